"""The retransmit component's pure parts: gains between readings, labels, API rows, the flag."""

from __future__ import annotations

from axoneme.agent import tcpretrans
from axoneme.agent.config import parse_args
from axoneme.datapath.linux.tcpretrans import RetransEntry
from axoneme.observer.directory import EndpointMeta, build_directory
from axoneme.observer.flow import FlowEndpoint, Workload


def entry(sport: int, segments: int, daddr: str = "10.0.2.9") -> RetransEntry:
    return RetransEntry("10.0.1.5", sport, daddr, 80, segments, 1_000_000_000, 3_000_000_000)


def test_advance_counts_only_what_each_flow_gained() -> None:
    reading, gains = tcpretrans.advance({}, [entry(1, 4), entry(2, 1)])
    assert [(e.sport, g) for e, g in gains] == [(1, 4), (2, 1)]
    reading, gains = tcpretrans.advance(reading, [entry(1, 9), entry(2, 1)])
    assert [(e.sport, g) for e, g in gains] == [(1, 5)]
    assert reading == {("10.0.1.5", 1, "10.0.2.9", 80): 9, ("10.0.1.5", 2, "10.0.2.9", 80): 1}


def test_advance_a_flow_evicted_and_back_counts_whole() -> None:
    reading, _ = tcpretrans.advance({}, [entry(1, 50)])
    reading, gains = tcpretrans.advance(reading, [entry(1, 3)])
    assert [(e.sport, g) for e, g in gains] == [(1, 3)]
    reading, gains = tcpretrans.advance(reading, [])
    assert reading == {} and gains == []


def test_workload_label_is_bounded() -> None:
    app = FlowEndpoint(namespace="demo", pod_name="web-7f9", workloads=(Workload("web", ""),))
    assert tcpretrans.workload_label(app) == "demo/web"
    assert tcpretrans.workload_label(FlowEndpoint(namespace="demo", pod_name="db")) == "demo/db"
    assert tcpretrans.workload_label(FlowEndpoint(identity=2)) == "other"


def test_flow_json_names_known_pods_and_leaves_others_bare() -> None:
    names = build_directory(
        [EndpointMeta("10.0.1.5", "demo", "client", 1234, ("k8s:app=client",), 7, "node1")], {}
    )
    row = tcpretrans.flow_json(entry(40000, 12, daddr="192.0.2.1"), names, 4_500_000_000)
    assert row == {
        "source": {"ip": "10.0.1.5", "port": 40000, "namespace": "demo", "pod": "client"},
        "destination": {"ip": "192.0.2.1", "port": 80, "namespace": "", "pod": ""},
        "segments": 12,
        "firstSeenSecondsAgo": 3.5,
        "lastSeenSecondsAgo": 1.5,
    }


def test_flag_turns_tracking_on_and_defaults_off() -> None:
    base = ["--node", "n1", "--store", "embedded:/tmp/x.json"]
    assert parse_args(base).tcp_retransmit_tracking is False
    assert parse_args([*base, "--enable-tcp-retransmit-tracking"]).tcp_retransmit_tracking
