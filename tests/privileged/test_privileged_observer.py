"""Flow observability end to end: the batch ring reader on a real ring, then the lab:
flows for allowed and denied traffic through the relay and ``axoneme observe``,
every CLI filter, follow, node loss and return, and bad input."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from axoneme.datapath import events as E
from axoneme.datapath.linux import bpfsys, libbpf
from axoneme.datapath.linux.loader import Datapath, ensure_bpffs
from axoneme.datapath.linux.maps import MetricsMap
from axoneme.datapath.linux.ringbatch import RingBatchReader
from axoneme.lab.topology import relay_socket
from axoneme.observer import flow as F
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.proto import observer_pb2_grpc as pbg
from privileged.bpfenv import REPO, require_datapath
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

# ---- the batch reader on a real ring --------------------------------------------


@pytest.fixture
def generator() -> Iterator[tuple[libbpf.BpfObject, Path]]:
    require_datapath()
    pin_dir = Path(f"/sys/fs/bpf/axt-observer-{uuid.uuid4().hex[:8]}")
    ensure_bpffs(pin_dir)
    pin_dir.mkdir()
    try:
        with libbpf.BpfObject(REPO / "bpf/build/tests/events_gen.o", pin_root=pin_dir) as obj:
            obj.load()
            yield obj, pin_dir
    finally:
        Datapath.remove(pin_dir)
    assert not pin_dir.exists()


def generate(obj: libbpf.BpfObject, per_run: int, repeat: int, base: int = 0) -> None:
    ctx = bytearray(192)  # struct __sk_buff: cb[0] at 48, cb[1] at 52
    struct.pack_into("=II", ctx, 48, per_run, base)
    packet = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes(40)
    bpfsys.prog_test_run(obj.program_fd("gen_events"), packet, ctx=bytes(ctx), repeat=repeat)


def test_batch_reader_reads_every_event_or_counts_it_lost(
    generator: tuple[libbpf.BpfObject, Path],
) -> None:
    obj, pin_dir = generator
    with (
        RingBatchReader(obj.map_fd("axo_events"), E.EVENT_SIZE) as reader,
        MetricsMap.open(pin_dir) as counters,
    ):
        assert reader.read().records.shape[0] == 0
        generate(obj, 64, 100, base=1000)
        assert reader.wait(1.0)
        batch = reader.read()
        assert batch.records.shape == (6400, E.EVENT_SIZE) and batch.discarded == 0
        ev = batch.records.view(F.EVENT_DTYPE).ravel()
        assert np.array_equal(ev["cookie"], np.tile(np.arange(1000, 1064), 100))
        assert np.all(ev["type"] == E.EVENT_DROP) and np.all(ev["reason"] == 133)
        assert E.decode(batch.records[5].tobytes()).saddr == "10.42.1.2"
        assert reader.read().records.shape[0] == 0  # consumed: nothing twice
        assert counters.lost_events() == 0

        # More than the ring holds, unread: what is not read is counted lost.
        produced = 64 * 2000
        generate(obj, 64, 2000)
        got = 0
        while (n := reader.read().records.shape[0]) > 0:
            got += n
        lost = counters.lost_events()
        assert 0 < got < produced and lost > 0
        assert got + lost == produced
        # The space is released: the ring takes events again.
        generate(obj, 10, 1)
        assert reader.read().records.shape[0] == 10


# ---- the lab ----------------------------------------------------------------------

pytestmark = [pytest.mark.lab, pytest.mark.slow]

WEB_POLICY = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "web-from-client", "namespace": "obs"},
    "spec": {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
            }
        ],
    },
}


def probe(src: str, dst: str) -> str:
    return ax("probe", "--timeout", "1", src, dst, check=False).stdout.split()[0]


def observe(*args: str) -> list[dict[str, Any]]:
    out = ax("observe", "-o", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def flows_of(*args: str) -> list[dict[str, Any]]:
    return [r["flow"] for r in observe(*args) if "flow" in r]


@pytest.fixture(scope="module")
def obs(lab: dict[str, Any]) -> dict[str, Any]:
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace("obs"),
            pod_manifest("obs", "web", "node2", {"app": "web"}, [(80, "TCP"), (81, "TCP")]),
            pod_manifest("obs", "client", "node1", {"app": "client"}, []),
            pod_manifest("obs", "other", "node1", {"app": "other"}, []),
        ),
    )
    pods = wait_pods("obs", {"web", "client", "other"})
    out = ax("policy", "import", "-f", "-", stdin=manifest(WEB_POLICY)).stdout
    ax("policy", "wait", out.strip().split()[-1], "--timeout", "30")
    assert probe("obs/client", "obs/web:80/TCP") == "reachable"
    assert probe("obs/other", "obs/web:80/TCP") == "timeout"
    assert probe("obs/client", "obs/web:81/TCP") == "timeout"
    return {"ips": {name: p["status"]["podIP"] for name, p in pods.items()}}


def _pod(ep: dict[str, Any]) -> str:
    return f"{ep.get('namespace', '')}/{ep.get('podName', '')}"


def test_allowed_and_denied_flows_name_endpoints_identities_and_reasons(
    obs: dict[str, Any],
) -> None:
    flows = wait_for(
        lambda: [f for f in flows_of("--last", "200", "-n", "obs") if f.get("verdict")],
        10,
        "flows of namespace obs",
    )
    allowed = [
        f for f in flows
        if _pod(f["source"]) == "obs/client" and _pod(f["destination"]) == "obs/web"
        and f["eventType"]["type"] == F.MSG_POLICY_VERDICT and f["verdict"] == "FORWARDED"
        and f["l4"]["TCP"]["destinationPort"] == 80
    ]  # fmt: skip
    assert {f["nodeName"] for f in allowed} == {"node1", "node2"}  # egress and ingress
    ingress = next(f for f in allowed if f["nodeName"] == "node2")
    assert ingress["trafficDirection"] == "INGRESS"
    web_identity = ingress["destination"]["identity"]
    client_identity = ingress["source"]["identity"]
    assert web_identity >= 256 and client_identity >= 256 and web_identity != client_identity
    assert "k8s:app=web" in ingress["destination"]["labels"]
    assert ingress["destination"]["workloads"] == [{"name": "web"}]
    assert ingress["IP"]["source"] == obs["ips"]["client"]

    drops = [
        f for f in flows
        if f["eventType"]["type"] == F.MSG_DROP and _pod(f["destination"]) == "obs/web"
    ]  # fmt: skip
    by_source = {(_pod(f["source"]), f["l4"]["TCP"]["destinationPort"]) for f in drops}
    assert ("obs/other", 80) in by_source and ("obs/client", 81) in by_source
    for f in drops:
        assert f["verdict"] == "DROPPED" and f["dropReasonDesc"] == "POLICY_DENIED"
        assert f["dropReason"] == 133 and f["nodeName"] == "node2"
        assert f["destination"]["identity"] == web_identity
        assert f["l4"]["TCP"]["flags"].get("SYN") is True
        assert f["isReply"] is False
    other = next(f for f in drops if _pod(f["source"]) == "obs/other")
    assert other["source"]["identity"] not in (client_identity, web_identity)
    assert "k8s:app=other" in other["source"]["labels"]

    # The compact line reads like Hubble's.
    line = ax("observe", "--last", "200", "--from-pod", "obs/other", "-t", "drop").stdout
    assert "obs/other:" in line and "-> obs/web:80" in line
    assert "Policy denied DROPPED (TCP Flags: SYN)" in line


CLI_FILTERS: list[tuple[list[str], Any]] = [
    (["--from-pod", "obs/other"], lambda f: _pod(f["source"]) == "obs/other"),
    (["--to-pod", "obs/web"], lambda f: _pod(f["destination"]) == "obs/web"),
    (["--pod", "obs/cli"], lambda f: "obs/client" in (_pod(f["source"]), _pod(f["destination"]))),
    (["--namespace", "obs"], lambda f: "obs" in (f["source"].get("namespace"),
                                                 f["destination"].get("namespace"))),
    (["--verdict", "DROPPED"], lambda f: f["verdict"] == "DROPPED"),
    (["--protocol", "tcp"], lambda f: "TCP" in f["l4"]),
    (["--to-port", "81"], lambda f: f["l4"]["TCP"]["destinationPort"] == 81),
    (["--port", "81"], lambda f: 81 in (f["l4"]["TCP"]["destinationPort"],
                                        f["l4"]["TCP"]["sourcePort"])),
    (["--label", "app=other"], lambda f: "k8s:app=other" in f["source"].get("labels", [])
        + f["destination"].get("labels", [])),
    (["--from-label", "app=client"], lambda f: "k8s:app=client" in f["source"]["labels"]),
    (["--to-label", "app=web"], lambda f: "k8s:app=web" in f["destination"]["labels"]),
    (["--node-name", "node1"], lambda f: f["nodeName"] == "node1"),
    (["--type", "drop"], lambda f: f["eventType"]["type"] == F.MSG_DROP),
    (["--type", "trace:to-endpoint"], lambda f: f["eventType"]["type"] == F.MSG_TRACE
        and f["traceObservationPoint"] == "TO_ENDPOINT"),
    (["--type", "policy-verdict", "--traffic-direction", "egress"],
     lambda f: f["eventType"]["type"] == F.MSG_POLICY_VERDICT
     and f["trafficDirection"] == "EGRESS"),
    (["--drop-reason-desc", "policy_denied"], lambda f: f.get("dropReasonDesc") == "POLICY_DENIED"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "expect"), CLI_FILTERS, ids=[" ".join(f) for f, _ in CLI_FILTERS]
)
def test_cli_filters_against_the_unfiltered_flows(
    obs: dict[str, Any], flags: list[str], expect: Any
) -> None:
    every = flows_of("--last", "4000", "-n", "obs")
    # The same request plus the filter returns exactly the flows that match it.
    got = flows_of("--last", "4000", "-n", "obs", *flags)
    wanted = [f for f in every if expect(f)]
    assert wanted, f"the traffic made no flow for {flags}"
    key = lambda f: f["uuid"]  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, wanted))


def test_ip_filter_and_first(obs: dict[str, Any]) -> None:
    ip = obs["ips"]["other"]
    got = flows_of("--last", "4000", "--ip", ip)
    assert got and all(ip in (f["IP"]["source"], f["IP"]["destination"]) for f in got)
    first = flows_of("--first", "2", "--node", "node2")
    every = flows_of("--last", "4000", "--node", "node2")
    assert [f["uuid"] for f in first] == [f["uuid"] for f in every[:2]]


def test_history_is_merged_in_time_order(obs: dict[str, Any]) -> None:
    flows = flows_of("--last", "4000")
    assert {f["nodeName"] for f in flows} == {"node1", "node2"}
    times = [f["time"] for f in flows]
    assert times == sorted(times)  # RFC 3339 with nanoseconds, all UTC: sortable


def test_follow_shows_a_new_drop(obs: dict[str, Any]) -> None:
    follow = subprocess.Popen(
        [sys.executable, "-m", "axoneme.cli.main", "observe", "--follow", "--from-pod",
         "obs/other", "--to-port", "81", "-t", "drop"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # connected before the traffic
        assert probe("obs/other", "obs/web:81/TCP") == "timeout"
        assert follow.stdout is not None
        line = follow.stdout.readline()
        assert "obs/other:" in line and "-> obs/web:81" in line and "DROPPED" in line
    finally:
        follow.terminate()
        follow.communicate(timeout=10)  # reaps it and closes the pipe


def test_agent_status_has_a_hubble_line_per_node(obs: dict[str, Any]) -> None:
    out = ax("status").stdout
    lines = [line for line in out.splitlines() if line.startswith("Hubble:")]
    assert len(lines) == 2, out
    for line in lines:
        assert line.startswith("Hubble:     Ok   Current/Max Flows: ") and "/4095 (" in line


def _relay_status() -> str:
    return ax("observe", "status").stdout


def test_relay_reports_a_node_away_and_back(obs: dict[str, Any]) -> None:
    state = json.loads(Path("/run/axoneme-lab/lab.json").read_text())
    pid = next(n["agentPid"] for n in state["nodes"] if n["name"] == "node2")
    os.kill(pid, signal.SIGSTOP)  # node2's observer stops answering
    try:
        wait_for(lambda: "Unavailable Nodes: node2" in _relay_status(), 15, "node2 unavailable")
        assert "Connected Nodes: 1/2" in _relay_status()
        nodes = ax("observe", "nodes").stdout
        assert "NODE_UNAVAILABLE" in nodes.split("node2")[1].splitlines()[0]
        responses = observe("--last", "5")
        assert responses[0]["nodeStatus"] == {
            "stateChange": "NODE_UNAVAILABLE", "nodeNames": ["node2"]
        }  # fmt: skip
        assert {r["flow"]["nodeName"] for r in responses if "flow" in r} == {"node1"}
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: "Connected Nodes: 2/2" in _relay_status(), 15, "node2 back")
    assert {f["nodeName"] for f in flows_of("--last", "50")} == {"node1", "node2"}


def test_bad_requests_are_refused_naming_the_field(obs: dict[str, Any]) -> None:
    for flags, message in [
        (["--to-port", "0"], "--to-port: '0' is not a port"),
        (["--last", "0"], "--last: 0 must be at least 1"),
        (["--verdict", "MAYBE"], "--verdict: 'MAYBE'"),
        (["--since", "tomorrow-ish"], "--since: 'tomorrow-ish'"),
        (["--first", "3", "--follow"], "--first: cannot be combined with --follow"),
        (["--node", "nope"], "--node: no observer socket"),
    ]:
        proc = ax("observe", *flags, check=False)
        assert proc.returncode == 1 and message in proc.stderr, (flags, proc.stderr)
    with grpc.insecure_channel(f"unix:{relay_socket()}") as channel:
        stub = pbg.ObserverStub(channel)  # type: ignore[no-untyped-call]
        bad = pb.GetFlowsRequest(whitelist=[pb.FlowFilter(source_pod=["no-namespace"])])
        with pytest.raises(grpc.RpcError) as err:
            list(stub.GetFlows(bad, timeout=10))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert err.value.details().startswith("whitelist[0].source_pod[0]")  # type: ignore[attr-defined]


# ---- metrics, scraped by a real Prometheus server ----------------------------------

PROM_PORT = 9099  # on the lab namespace's loopback


def in_lab(*cmd: str, timeout: float = 10) -> str:
    return subprocess.run(
        ["nsenter", "--net=/run/netns/axn-lab", *cmd],
        check=True, capture_output=True, text=True, timeout=timeout,
    ).stdout  # fmt: skip


def promql(query: str) -> list[dict[str, Any]]:
    out = in_lab(
        "curl", "-sf", "--get", "--data-urlencode", f"query={query}",
        f"http://127.0.0.1:{PROM_PORT}/api/v1/query",
    )  # fmt: skip
    body = json.loads(out)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scraped(target: str, name: str, **labels: str) -> float:
    """One sample straight from a /metrics endpoint (the value Prometheus should hold)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in in_lab("curl", "-sf", f"http://{target}/metrics").splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1 : line.rindex("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_prometheus_scrapes_agents_and_relay(obs: dict[str, Any], tmp_path: Path) -> None:
    prometheus = "/usr/bin/prometheus"
    if not Path(prometheus).exists():
        if os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1":
            pytest.fail("needs Debian's prometheus (scripts/install-deps.sh installs it)")
        pytest.skip("needs Debian's prometheus (scripts/install-deps.sh installs it)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: agents\n"
        "    static_configs: [{targets: ['172.30.0.11:9962', '172.30.0.12:9962']}]\n"
        "  - job_name: relay\n"
        "    static_configs: [{targets: ['172.30.0.1:9966']}]\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            ["nsenter", "--net=/run/netns/axn-lab", prometheus, f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{PROM_PORT}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:

        def all_up() -> bool:
            try:
                up = promql("up")
            except (subprocess.CalledProcessError, AssertionError):
                return False
            return len(up) == 3 and all(r["value"][1] == "1" for r in up)

        wait_for(all_up, 30, "Prometheus scraping both agents and the relay")
        # What the agent on node2 exports for the denied connections of the fixture...
        denied = scraped("172.30.0.12:9962", "hubble_drop_total", protocol="TCP",
                         reason="POLICY_DENIED")  # fmt: skip
        assert denied >= 2
        query = 'hubble_drop_total{instance="172.30.0.12:9962",reason="POLICY_DENIED"}'

        def stored() -> bool:
            result = promql(query)
            return bool(result) and float(result[0]["value"][1]) == denied

        # ... is what Prometheus holds after its next scrape.
        wait_for(stored, 10, f"{query} == {denied}")
        flows = promql('sum by (instance) (hubble_flows_processed_total{job="agents"})')
        assert {r["metric"]["instance"] for r in flows} == {"172.30.0.11:9962", "172.30.0.12:9962"}
        assert all(float(r["value"][1]) > 0 for r in flows)
        verdicts = promql(
            'sum by (direction, action) (hubble_policy_verdicts_total{action="dropped"})'
        )
        assert {r["metric"]["direction"] for r in verdicts} == {"ingress"}
        syn = promql('sum(hubble_tcp_flags_total{flag="SYN"})')
        assert float(syn[0]["value"][1]) > 0
        ports = promql('hubble_port_distribution_total{port="80",protocol="TCP"}')
        assert ports and float(ports[0]["value"][1]) > 0
        lost = promql("sum(hubble_lost_events_total)")
        assert float(lost[0]["value"][1]) == 0
        peers = promql('hubble_relay_peers{state="NODE_CONNECTED"}')
        assert float(peers[0]["value"][1]) == 2
    finally:
        server.terminate()
        server.wait(timeout=15)
