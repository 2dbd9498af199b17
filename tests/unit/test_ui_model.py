"""The UI's pure parts: peers, flow rows, the service map, filters, alerts, --listen."""

from __future__ import annotations

import pytest
from ui_helpers import flow, pod

from axoneme.cli.context import CLIError
from axoneme.health.checker import Thresholds
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.ui.alerts import health_alerts, health_summary
from axoneme.ui.command import parse_listen
from axoneme.ui.filters import FilterError, flows_request
from axoneme.ui.model import Peer, ServiceMap, flow_view, peer_of


def test_peers_group_pods_by_workload_then_app_then_name() -> None:
    ep = pod("demo", "web-7d9", app="web")
    ep.workloads.append(pb.Workload(name="web-deploy", kind="Deployment"))
    assert peer_of(ep, "10.0.0.1") == Peer("demo/web-deploy", "demo", "web-deploy", "workload")
    assert peer_of(pod("demo", "web-1", app="web"), "").id == "demo/web"
    assert peer_of(pod("demo", "client"), "").id == "demo/client"
    world = pb.Endpoint(identity=2, labels=["reserved:world"])
    assert peer_of(world, "198.51.100.10") == Peer("world", "", "world", "reserved")
    assert peer_of(pb.Endpoint(identity=16777217), "").id == "identity:16777217"
    assert peer_of(pb.Endpoint(), "192.0.2.1").id == "192.0.2.1"


def test_flow_view_row() -> None:
    view = flow_view(flow(pod("demo", "client"), pod("demo", "web", app="web"), verdict=2))
    assert view is not None
    row = view.to_json()
    assert row["src"] == "demo/client" and row["dst"] == "demo/web"
    assert row["srcPod"] == "demo/client" and row["port"] == "80/TCP"
    assert row["verdict"] == "DROPPED" and row["dropReason"] == "POLICY_DENIED"
    assert row["flags"] == "SYN" and row["type"] == "policy-verdict" and row["time"] == 100
    assert row["edge"] == "demo/client|demo/web|80/TCP"
    assert flow_view(pb.GetFlowsResponse(node_name="x")) is None


def test_service_map_counts_edges_by_verdict_and_skips_replies() -> None:
    client, web, other = pod("demo", "client"), pod("demo", "web", app="web"), pod("x", "o")
    smap = ServiceMap()
    views = [
        flow(client, web),
        flow(client, web),
        flow(client, web, verdict=2, t=200),
        flow(web, client, reply=True),
        flow(other, web, verdict=2, port=81),
    ]
    for resp in views:
        view = flow_view(resp)
        assert view is not None
        smap.add(view)
    snap = smap.snapshot()
    assert [n["id"] for n in snap["nodes"]] == ["demo/client", "demo/web", "x/o"]
    edges = {e["key"]: e for e in snap["edges"]}
    assert set(edges) == {"demo/client|demo/web|80/TCP", "x/o|demo/web|81/TCP"}
    main = edges["demo/client|demo/web|80/TCP"]
    assert main["counts"] == {"DROPPED": 1, "FORWARDED": 2} and main["verdict"] == "mixed"
    assert main["last"] == 200
    assert edges["x/o|demo/web|81/TCP"]["verdict"] == "dropped"
    assert smap.version == 4


def test_namespace_view_keeps_flows_touching_it() -> None:
    view = flow_view(flow(pod("x", "o"), pod("demo", "web")))
    assert view is not None
    assert view.touches("demo") and view.touches("x") and view.touches("")
    assert not view.touches("kube-system")


def test_filters_are_the_observe_flags() -> None:
    req = flows_request("--verdict DROPPED --from-pod demo/client --port 80")
    assert req.follow and req.number == 1000
    assert list(req.whitelist[0].verdict) == [pb.DROPPED]
    assert list(req.whitelist[0].source_pod) == ["demo/client"]
    assert flows_request("").whitelist == []
    for bad, named in (
        ("--verdict NOPE", "--verdict"),
        ("--bogus", "--bogus"),
        ("--follow", "--follow"),
        ("--last 5", "--last"),
        ("'unclosed", "filter"),
    ):
        with pytest.raises(FilterError, match=named):
            flows_request(bad)


REPORT = {
    "source": "node1",
    "nodes": [
        {
            "name": "node2",
            "reachable": True,
            "paths": [
                {
                    "kind": "node",
                    "protocol": "icmp",
                    "ip": "172.30.0.12",
                    "sent": 20,
                    "lost": 4,
                    "lastOk": True,
                    "latencySeconds": 0.001,
                    "jitterSeconds": 0.0001,
                }
            ],
        }
    ],
    "alerts": [{"message": "agent's own"}],
}


def test_alerts_are_the_agents_or_judged_again_with_ui_thresholds() -> None:
    assert health_alerts([REPORT]) == [{"message": "agent's own"}]
    strict = health_alerts([REPORT], Thresholds(loss_ratio=0.1))
    assert [(a["target"], a["metric"], a["value"]) for a in strict] == [("node2", "loss", 0.2)]
    assert health_alerts([REPORT], Thresholds(loss_ratio=0.5)) == []
    assert health_summary([REPORT]) == [{"source": "node1", "reachable": 1, "nodes": 1}]


def test_listen_is_loopback_only() -> None:
    assert parse_listen("127.0.0.1:12000") == ("127.0.0.1", 12000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad, why in (
        ("0.0.0.0:80", "not a loopback"),
        ("172.30.0.1:80", "not a loopback"),
        ("localhost:80", "not an IP"),
        ("127.0.0.1", "HOST:PORT"),
        ("127.0.0.1:70000", "HOST:PORT"),
    ):
        with pytest.raises(CLIError, match=f"--listen: .*{why}"):
            parse_listen(bad)
