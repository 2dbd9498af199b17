"""The health checker with scripted probes: paths, windows, report and alerts."""

from __future__ import annotations

import asyncio

import pytest

from axoneme.health.checker import (
    HealthChecker,
    NodeTarget,
    PathKey,
    Thresholds,
    alerts,
    paths_of,
)
from axoneme.health.window import PathStats

TARGETS = [NodeTarget("node1", "172.30.0.11", "10.42.1.2"), NodeTarget("node2", "172.30.0.12", "")]


def test_paths_of_a_node_without_health_endpoint_are_host_only() -> None:
    assert paths_of(TARGETS[1]) == [
        PathKey("node2", "node", "icmp", "172.30.0.12"),
        PathKey("node2", "node", "http", "172.30.0.12"),
    ]
    assert len(paths_of(TARGETS[0])) == 4


def _stats(sent: int, lost: int, jitter: float | None) -> PathStats:
    return PathStats(sent, lost, True, 0.001, 0.001, jitter)


def test_alerts_on_loss_and_jitter_above_thresholds_only() -> None:
    limits = Thresholds(loss_ratio=0.1, jitter_seconds=0.005, min_samples=5)
    lossy = PathKey("node2", "node", "icmp", "172.30.0.12")
    jittery = PathKey("node2", "endpoint", "icmp", "10.42.2.2")
    http_jitter = PathKey("node2", "endpoint", "http", "10.42.2.2")
    fine = PathKey("node1", "node", "icmp", "172.30.0.11")
    young = PathKey("node1", "node", "http", "172.30.0.11")
    found = alerts(
        "node1",
        {
            lossy: _stats(10, 3, 0.001),
            jittery: _stats(10, 0, 0.006),
            http_jitter: _stats(10, 0, 0.05),  # HTTP jitter is reported, never alerted
            fine: _stats(10, 1, 0.005),  # exactly at the limits: no alert
            young: _stats(4, 4, None),  # too few samples for a verdict
        },
        limits,
    )
    assert [(a.path, a.metric) for a in found] == [(jittery, "jitter"), (lossy, "loss")]
    assert "icmp loss 30% > 10%" in found[1].message()
    assert "jitter 6.0ms > 5.0ms" in found[0].message()


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="loss threshold"):
        Thresholds(loss_ratio=1.5)
    with pytest.raises(ValueError, match="jitter threshold"):
        Thresholds(jitter_seconds=0)


def test_checker_rounds_fill_windows_and_report_alerts() -> None:
    answers = {"172.30.0.11": 0.001, "10.42.1.2": 0.002}  # node2 never answers

    async def probe(ip: str, timeout: float) -> float | None:
        return answers.get(ip)

    checker = HealthChecker(
        "node1",
        {"icmp": probe, "http": probe},
        window=4,
        interval=0.01,
        thresholds=Thresholds(loss_ratio=0.5, min_samples=2),
    )
    checker.set_targets(TARGETS)

    async def rounds(n: int) -> None:
        for _ in range(n):
            await checker.probe_once()

    asyncio.run(rounds(6))
    report = checker.report()
    nodes = {n["name"]: n for n in report["nodes"]}  # type: ignore[attr-defined]
    assert nodes["node1"]["reachable"] and not nodes["node2"]["reachable"]
    assert all(p["sent"] == 4 for n in nodes.values() for p in n["paths"])
    lost = [(a["target"], a["protocol"], a["value"]) for a in report["alerts"]]  # type: ignore[attr-defined]
    assert lost == [("node2", "http", 1.0), ("node2", "icmp", 1.0)]

    # node2 goes away: its paths (and alerts) go with it.
    checker.set_targets(TARGETS[:1])
    assert checker.report()["alerts"] == []
