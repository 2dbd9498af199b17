"""``axoneme status``'s Cluster health lines."""

from __future__ import annotations

from typing import Any

from axoneme.cli.health import health_lines


def _path(kind: str, protocol: str, ok: bool, loss: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "protocol": protocol,
        "ip": "172.30.0.12" if kind == "node" else "10.42.2.2",
        "sent": 20,
        "lossRatio": loss,
        "lastOk": ok,
        "latencySeconds": 0.0012,
        "jitterSeconds": 0.0003,
    }


REPORT = {
    "source": "node1",
    "nodes": [
        {"name": "node1", "reachable": True, "paths": [_path("node", "icmp", True, 0.0)]},
        {
            "name": "node2",
            "reachable": False,
            "paths": [_path("node", "icmp", False, 0.4), _path("endpoint", "http", True, 0.0)],
        },
    ],
    "alerts": [{"message": "node1 -> node2 node (172.30.0.12) icmp loss 40% > 5%"}],
}


def test_summary_and_alerts() -> None:
    assert health_lines(REPORT, verbose=False) == [
        "Cluster health:   1/2 reachable",
        "  ALERT node1 -> node2 node (172.30.0.12) icmp loss 40% > 5%",
    ]


def test_verbose_lists_every_path() -> None:
    text = "\n".join(health_lines(REPORT, verbose=True))
    assert "  node1 (localhost):" in text
    assert "    Host connectivity to 172.30.0.12:" in text
    assert "ICMP to-host:      Connection timed out, RTT=1.200ms jitter=0.300ms loss=40%" in text
    assert "    Endpoint connectivity to 10.42.2.2:" in text


def test_disabled() -> None:
    assert health_lines(None, verbose=True) == ["Cluster health:   disabled"]
