"""The "Cluster health" part of ``axoneme status`` (as ``cilium status``), pure text."""

from __future__ import annotations

from typing import Any

__all__ = ["health_lines"]

_NAMES = {
    ("node", "icmp"): "ICMP to-host",
    ("node", "http"): "HTTP to-agent",
    ("endpoint", "icmp"): "ICMP to-endpoint",
    ("endpoint", "http"): "HTTP to-endpoint",
}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}ms"


def _path_line(p: dict[str, Any]) -> str:
    name = _NAMES.get((p["kind"], p["protocol"]), f"{p['protocol']} to-{p['kind']}")
    state = "OK" if p["lastOk"] else "Connection timed out"
    return (
        f"      {name + ':':<18} {state}, RTT={_ms(p['latencySeconds'])} "
        f"jitter={_ms(p['jitterSeconds'])} loss={p['lossRatio']:.0%} ({p['sent']} probes)"
    )


def health_lines(report: dict[str, Any] | None, verbose: bool) -> list[str]:
    """``Cluster health: n/m reachable``, then (verbose) every node's paths, then alerts."""
    if report is None:
        return ["Cluster health:   disabled"]
    nodes = report["nodes"]
    reachable = sum(1 for n in nodes if n["reachable"])
    lines = [f"Cluster health:   {reachable}/{len(nodes)} reachable"]
    if verbose:
        for node in nodes:
            local = " (localhost)" if node["name"] == report["source"] else ""
            lines.append(f"  {node['name']}{local}:")
            for kind, title in (("node", "Host"), ("endpoint", "Endpoint")):
                paths = [p for p in node["paths"] if p["kind"] == kind]
                if paths:
                    lines.append(f"    {title} connectivity to {paths[0]['ip']}:")
                    lines += [_path_line(p) for p in paths]
    lines += [f"  ALERT {a['message']}" for a in report["alerts"]]
    return lines
