"""Health alerts for the UI: the agents' own, or recomputed with the UI's thresholds."""

from __future__ import annotations

from typing import Any

from axoneme.health.checker import PathKey, Thresholds, alerts
from axoneme.health.window import PathStats

__all__ = ["health_alerts", "health_summary"]


def _stats(path: dict[str, Any]) -> PathStats:
    return PathStats(
        sent=int(path["sent"]),
        lost=int(path["lost"]),
        last_ok=bool(path["lastOk"]),
        last_rtt=path.get("lastRttSeconds"),
        latency=path.get("latencySeconds"),
        jitter=path.get("jitterSeconds"),
    )


def health_alerts(
    reports: list[dict[str, Any]], thresholds: Thresholds | None = None
) -> list[dict[str, Any]]:
    """Every agent's alerts; with ``thresholds``, judged again from the path statistics."""
    out: list[dict[str, Any]] = []
    for report in sorted(reports, key=lambda r: str(r["source"])):
        if thresholds is None:
            out += report["alerts"]
            continue
        stats = {
            PathKey(node["name"], p["kind"], p["protocol"], p["ip"]): _stats(p)
            for node in report["nodes"]
            for p in node["paths"]
        }
        out += [a.to_json() for a in alerts(report["source"], stats, thresholds)]
    return out


def health_summary(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per source node: how many nodes it reaches (the UI's health strip)."""
    return [
        {
            "source": r["source"],
            "reachable": sum(1 for n in r["nodes"] if n["reachable"]),
            "nodes": len(r["nodes"]),
        }
        for r in sorted(reports, key=lambda r: str(r["source"]))
    ]
