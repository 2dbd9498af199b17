"""The pure parts of ``bench/run.py``: qperf parsing, kube-proxy's rules, the flow matrix,
result rows and the report's schema, and the markdown rendered from it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from suite import flows, kubeproxy, markdown, matrix, qperf, results, scripts

QPERF_OUT = """\
tcp_lat:
    latency   =  25.3 us
    msg_size  =     4 KiB (4,096)
    time      =     1 sec
tcp_bw:
    bw        =  2.34 Gb/sec
    msg_size  =     4 KiB (4,096)
udp_lat:
    latency   =  1.2 ms
udp_bw:
    send_bw  =  2.09 Gb/sec
    recv_bw  =   930 Mb/sec
"""


def test_qperf_output_parses_into_the_reference_columns() -> None:
    assert qperf.parse(QPERF_OUT) == {
        "tcp_lat": 25.3,
        "tcp_bw": 2340.0,
        "udp_lat": 1200.0,
        "udp_send_bw": 2090.0,
        "udp_recv_bw": 930.0,
    }
    assert set(qperf.parse(QPERF_OUT)) == set(qperf.METRICS)


def test_qperf_output_missing_a_test_gives_no_value_for_it() -> None:
    partial = QPERF_OUT.split("udp_lat:")[0]
    assert set(qperf.parse(partial)) == {"tcp_lat", "tcp_bw"}
    assert qperf.parse("qperf: failed to connect\n") == {}


def test_a_test_that_got_nothing_through_gives_no_value() -> None:
    # What qperf prints when UDP is dropped on the way: zeros, not failures.
    text = QPERF_OUT.replace("1.2 ms", "0 ns").replace("930 Mb/sec", "0 bits/sec")
    assert set(qperf.parse(text)) == {"tcp_lat", "tcp_bw"}  # and no lone send rate


def test_qperf_command_is_the_reference_one_with_fixed_ports() -> None:
    cmd = qperf.client_command("10.0.0.1", qperf.Ports(30765, 30766), 3)
    assert cmd == [
        "qperf", "--listen_port", "30765", "--ip_port", "30766", "-t", "3", "10.0.0.1",
        "-ub", "-oo", "msg_size:4K", "-vu", "tcp_lat", "tcp_bw", "udp_lat", "udp_bw",
    ]  # fmt: skip


def _svc(endpoints: tuple[str, ...]) -> kubeproxy.Service:
    return kubeproxy.Service(
        "bench",
        "web",
        "10.82.0.10",
        (
            kubeproxy.ServicePort("http", 80, "TCP", 8080, 30080),
            kubeproxy.ServicePort("dns", 53, "UDP", 5353),
        ),
        endpoints,
    )


def test_kube_proxy_rules_have_its_chain_structure() -> None:
    text = kubeproxy.restore_input([_svc(("10.81.1.20", "10.81.2.20"))], "10.81.0.0/16")
    lines = text.splitlines()
    assert lines[0] == "*filter" and text.count("COMMIT") == 2
    nat = lines[lines.index("*nat") :]
    entry = [x for x in nat if x.startswith("-A KUBE-SERVICES")]
    # One entry per ClusterIP port, then the NodePort jump last.
    assert len(entry) == 3
    assert entry[-1].endswith("--dst-type LOCAL -j KUBE-NODEPORTS")
    assert "-d 10.82.0.10/32 -p tcp -m tcp --dport 80" in entry[0]
    svc_chain = entry[0].rsplit(" ", 1)[1]
    assert svc_chain.startswith("KUBE-SVC-") and len(svc_chain) == len("KUBE-SVC-") + 16
    rules = [x for x in nat if x.startswith(f"-A {svc_chain} ")]
    # masquerade off-cluster sources, then one random pick per endpoint but the last
    assert "! -s 10.81.0.0/16" in rules[0] and rules[0].endswith("-j KUBE-MARK-MASQ")
    assert "--probability 0.50000000000" in rules[1]
    assert "statistic" not in rules[2]
    dnat = [x for x in nat if "DNAT" in x]
    assert {x.rsplit(" ", 1)[1] for x in dnat} == {
        "10.81.1.20:8080",
        "10.81.2.20:8080",
        "10.81.1.20:5353",
        "10.81.2.20:5353",
    }
    nodeports = [x for x in nat if x.startswith("-A KUBE-NODEPORTS")]
    assert len(nodeports) == 1 and "--dport 30080" in nodeports[0]
    # Every chain jumped to is declared.
    declared = {x[1:].split()[0] for x in lines if x.startswith(":")}
    jumped = {x.rsplit("-j ", 1)[1].split()[0] for x in lines if " -j KUBE-" in x}
    assert jumped <= declared


def test_filler_services_are_distinct_and_bounded() -> None:
    fillers = kubeproxy.filler_services(300)
    assert len({s.cluster_ip for s in fillers}) == 300
    assert fillers[0].cluster_ip == "10.83.0.1"
    with pytest.raises(ValueError, match="filler services"):
        kubeproxy.filler_services(-1)


def test_flows_the_limit_measures_and_what_the_others_divide_by() -> None:
    limit = {f.name for f in flows.flows_for(flows.LIMIT)}
    other = {f.name for f in flows.flows_for("axoneme-native")}
    assert "node-to-node" in limit and "node-to-node" not in other
    assert not {"pod-to-service-same-node", "pod-to-service-other-node"} & limit
    for name in other:
        assert flows.limit_flow(name) in limit, name
    # Two NodePorts must coexist: each server has its own port pair.
    assert flows.PORTS_SAME != flows.PORTS_OTHER


def test_env_reports_why_a_flow_cannot_run() -> None:
    env = flows.Env({}, {"svc-same": "10.96.0.2"}, {"nodeport": "no NodePort program"})
    by = flows.FLOW_BY_NAME
    assert env.unavailable(by["pod-to-service-same-node"]) is None
    assert env.unavailable(by["external-to-nodeport-same-node"]) == "no NodePort program"
    assert env.unavailable(by["pod-to-pod-same-node"]) == "no server-same in this environment"


def test_rotation_interleaves_the_order_round_by_round() -> None:
    items = ["a", "b", "c"]
    assert [matrix.rotated(items, r) for r in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    assert matrix.rotated([], 2) == []


def test_summary_divides_by_the_limit_on_the_same_path() -> None:
    samples: matrix.Samples = {
        ("limit", "pod-to-pod-same-node", "tcp_lat"): [20.0, 22.0, 30.0],
        ("axoneme-native", "pod-to-pod-same-node", "tcp_lat"): [21.0, 23.0, 24.0],
        ("axoneme-native", "pod-to-service-same-node", "tcp_lat"): [44.0],
        ("axoneme-native", "pod-to-pod-other-node", "tcp_bw"): [1000.0],
    }
    rows = {(r.datapath, r.scenario, r.metric): r for r in matrix.summarize(samples)}
    pod = rows[("axoneme-native", "pod-to-pod-same-node", "tcp_lat")]
    assert (pod.median, pod.runs, pod.ratio_to_limit) == (23.0, 3, 1.045)
    assert pod.limit == "limit / pod-to-pod-same-node"
    svc = rows[("axoneme-native", "pod-to-service-same-node", "tcp_lat")]
    assert svc.ratio_to_limit == 2.0 and svc.limit == "limit / pod-to-pod-same-node"
    # No limit measured for that path: no ratio, and no made-up one.
    lone = rows[("axoneme-native", "pod-to-pod-other-node", "tcp_bw")]
    assert lone.ratio_to_limit is None and lone.limit is None
    assert rows[("limit", "pod-to-pod-same-node", "tcp_lat")].ratio_to_limit == 1.0


def _report(**overrides: Any) -> dict[str, Any]:
    r = results.row("datapath", "node-to-node", "limit", "tcp_lat", "us", [20.0, 21.0], [20.0])
    report: dict[str, Any] = {
        "created": "2026-11-26T10:00:00Z",
        "kernel": "6.1.0",
        "machine": {"cpus": 2},
        "config": {"quick": True, "families": ["datapath", "services"], "rounds": 2},
        "rows": [r.as_json()],
        "unavailable": [{"family": "services", "what": "services", "reason": "not yet"}],
        "failures": [],
        "notes": [],
    }
    report.update(overrides)
    return report


def test_a_well_formed_report_has_no_problems() -> None:
    assert results.report_problems(_report()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kernel": None}, "kernel: missing"),
        ({"median": -1.0}, "rows[0].median: negative"),
        ({"median": float("nan")}, "rows[0].median: not a finite number"),
        ({"runs": 0}, "rows[0].runs: not a positive integer"),
        ({"samples": [1.0]}, "rows[0].samples: not a list of runs=2 numbers"),
        ({"ratio_to_limit": 0}, "rows[0].ratio_to_limit"),
        ({"unit": ""}, "rows[0].unit: not a non-empty string"),
    ],
)
def test_malformed_reports_are_named(change: dict[str, Any], problem: str) -> None:
    report = _report()
    if "kernel" in change:
        report["kernel"] = None
    else:
        report["rows"][0].update(change)
    found = results.report_problems(report)
    assert any(p.startswith(problem) for p in found), found


def test_duplicate_rows_and_reasonless_entries_are_problems() -> None:
    report = _report()
    report["rows"].append(dict(report["rows"][0]))
    report["unavailable"].append({"family": "observer", "what": "observer", "reason": ""})
    found = results.report_problems(report)
    assert any("duplicate" in p for p in found)
    assert "unavailable[1]: needs family, what and reason" in found


def test_markdown_has_the_reference_table_and_says_what_was_not_measured() -> None:
    rows = [
        results.row("datapath", "pod-to-pod-same-node", dp, m, qperf.METRICS[m], [v], [base])
        for dp, scale in (("limit", 1.0), ("axoneme-native", 1.1))
        for m, base in (("tcp_lat", 20.0), ("tcp_bw", 2000.0))
        for v in [base * scale]
    ]
    report = _report(rows=[r.as_json() for r in rows])
    text = markdown.render(report)
    assert "| Flow | tcp_lat | udp_lat | tcp_bw | udp_send_bw | udp_recv_bw |" in text
    assert "| pod-to-pod, same node | 22 us | — | 2.2 Gb/s | — | — |" in text
    assert "| pod-to-pod, same node | axoneme-native | 1.10x | — | 1.10x | — | — |" in text
    assert "- services: not available: not yet" in text


def test_markdown_says_a_repeated_failure_once_with_its_count() -> None:
    fail = {"family": "datapath", "what": "axoneme-native / f", "error": "no result for udp_lat"}
    report = _report(failures=[fail, dict(fail), {**fail, "what": "limit / f"}])
    report["config"]["families"] = ["datapath"]
    report["family_seconds"] = {"datapath": 412.3}
    text = markdown.render(report)
    assert "- axoneme-native / f: no result for udp_lat (2 times)" in text
    assert "- limit / f: no result for udp_lat\n" in text
    assert "(412 s)" in text


def test_units_are_rendered_for_reading() -> None:
    assert markdown.fmt(2340.0, "Mb/s") == "2.34 Gb/s"
    assert markdown.fmt(930.0, "Mb/s") == "930 Mb/s"
    assert markdown.fmt(25.34, "us") == "25.3 us"
    assert markdown.fmt(20100, "entries") == "20,100 entries"


def test_cni_rows_divide_by_bridge_per_op() -> None:
    data = {
        "rows": [
            {
                "plugin": plugin,
                "op": op,
                "median_ms": med,
                "p99_ms": med * 2,
                "runs": 2,
                "samples": 50,
                "round_medians_ms": [med, med],
            }
            for plugin, op, med in (
                ("axoneme-cni", "ADD", 30.0),
                ("bridge", "ADD", 10.0),
                ("axoneme-cni", "DEL", 20.0),
                ("bridge", "DEL", 20.0),
            )
        ]
    }
    out = scripts.convert_cni(data, "cni")
    rows = {(r.scenario, r.datapath, r.metric): r for r in out.rows}
    assert len(rows) == 8
    add = rows[("cni-add", "axoneme-cni", "median_latency")]
    assert (add.median, add.runs, add.samples, add.ratio_to_limit) == (30.0, 2, (30.0, 30.0), 3.0)
    assert add.limit == "bridge+host-local / cni-add"
    assert rows[("cni-del", "axoneme-cni", "p99_latency")].ratio_to_limit == 1.0
    report = _report(rows=[r.as_json() for r in out.rows])
    assert results.report_problems(report) == []


def test_passthrough_keeps_shaped_rows_and_drops_what_it_cannot_vouch_for() -> None:
    data = {
        "rows": [
            {"scenario": "s", "datapath": "d", "metric": "m", "median": 2.0, "unit": "ms",
             "runs": 2, "samples": [1.0, 3.0], "ratio_to_limit": 1.5, "limit": "direct / s"},
            # a count measured once: its one sample is its value
            {"scenario": "s", "datapath": "d", "metric": "entries", "median": 7, "unit": "n",
             "runs": 1},
            # several runs but no samples: not a row we can check, so not a row
            {"scenario": "s", "datapath": "d", "metric": "x", "median": 1.0, "unit": "ms",
             "runs": 3},
        ]
    }  # fmt: skip
    out = scripts.passthrough("policy")(data, "policy")
    got = {r.metric: r for r in out.rows}
    assert set(got) == {"m", "entries"}
    assert got["m"].ratio_to_limit == 1.5 and got["m"].limit == "direct / s"
    assert got["entries"].samples == (7.0,) and got["entries"].ratio_to_limit is None
    assert results.report_problems(_report(rows=[r.as_json() for r in out.rows])) == []


FAKE_SCRIPT = """\
import json, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
if "--fail" in args:
    sys.exit("it broke")
row = {"scenario": " ".join(a for a in args if a.startswith("--q") or a == "--no-lab"),
       "datapath": "d", "metric": "m", "median": 1.0, "unit": "ms", "runs": 1}
(out / "fake.json").write_text(json.dumps({"rows": [row]}))
"""


def _script(tmp_path: Path, *args: str) -> scripts.Script:
    path = tmp_path / "fake.py"
    path.write_text(FAKE_SCRIPT)
    return scripts.Script(
        "fam",
        str(path),
        args,
        ("--quick",),
        "fake.json",
        scripts.passthrough("fam"),
        60,
        "fake.py is not in the tree",
        lab_held_args=("--no-lab",),
    )


def test_a_script_family_runs_the_script_and_reads_its_rows(tmp_path: Path) -> None:
    out = scripts.run_script(_script(tmp_path), True, True, lambda _: None)
    assert [r.scenario for r in out.rows] == ["--quick --no-lab"]
    assert not out.failures and not out.unavailable
    out = scripts.run_script(_script(tmp_path), False, False, lambda _: None)
    assert [r.scenario for r in out.rows] == [""]


def test_a_failing_or_absent_script_is_a_failure_or_unavailable(tmp_path: Path) -> None:
    out = scripts.run_script(_script(tmp_path, "--fail"), False, False, lambda _: None)
    assert not out.rows
    assert [(f.family, f.error) for f in out.failures] == [("fam", "exit status 1: it broke")]
    gone = _script(tmp_path)
    gone = scripts.Script(**{**vars(gone), "path": str(tmp_path / "nope.py")})
    out = scripts.run_script(gone, False, False, lambda _: None)
    assert [(u.family, u.reason) for u in out.unavailable] == [
        ("fam", "fake.py is not in the tree")
    ]


def test_each_axoneme_datapath_is_a_lab_mode_the_tree_accepts() -> None:
    from suite import labnet

    from axoneme.lab.topology import LabConfig

    modes = {}
    for datapath in ("axoneme-tunnel", "axoneme-native", "axoneme-host-routing"):
        config = labnet.lab_config(datapath)
        assert isinstance(config, LabConfig), config
        modes[datapath] = (config.routing_mode, config.host_routing)
    assert modes == {
        "axoneme-tunnel": ("tunnel", "legacy"),
        "axoneme-native": ("native", "legacy"),
        "axoneme-host-routing": ("native", "bpf"),
    }
    described = labnet.describe(LabConfig(routing_mode="tunnel", host_routing="legacy"))
    assert described == "axoneme lab --routing-mode tunnel --host-routing legacy"


def test_bench_manifests_are_valid_and_forward_qperf_ports_unchanged() -> None:
    import json

    from suite import labnet

    from axoneme.k8s.objects import validate
    from axoneme.k8s.service import parse_service

    pods = [json.loads(d) for d in labnet.pods_manifest().split("\n---\n")]
    assert [validate(p)["kind"] for p in pods] == ["Namespace", "Pod", "Pod", "Pod"]
    services = [json.loads(d) for d in labnet.services_manifest().split("\n---\n")]
    assert len(services) == 2
    for raw, (_, server, ports) in zip(services, labnet.SERVICES, strict=True):
        svc = parse_service(raw)
        assert svc.type == "NodePort" and raw["spec"]["selector"] == {"bench": server}
        # qperf tells the server its data port: port, targetPort and nodePort must agree.
        assert {(p.port, p.target_port, p.node_port, p.protocol) for p in svc.ports} == {
            (ports.control, ports.control, ports.control, "TCP"),
            (ports.data, ports.data, ports.data, "TCP"),
            (ports.data, ports.data, ports.data, "UDP"),
        }
