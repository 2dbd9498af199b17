"""The health checker: every interval, probe every node and its health endpoint.

Paths are (target node, kind, protocol): ``node`` is the node's own address
(ICMP, and HTTP to its agent's responder), ``endpoint`` its health endpoint
(ICMP, HTTP). Each path keeps a sliding window of results; the report and the
alerts are pure functions of the windows, so they are tested without a network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from axoneme.health.window import PathStats, ProbeWindow

__all__ = [
    "Alert",
    "HealthChecker",
    "NodeTarget",
    "PathKey",
    "Thresholds",
    "alerts",
    "paths_of",
]

Probe = Callable[[str, float], Awaitable[float | None]]  # (ip, timeout) → rtt or None


@dataclass(frozen=True)
class NodeTarget:
    name: str
    node_ip: str
    health_ip: str  # "" while the node has published none


@dataclass(frozen=True, order=True)
class PathKey:
    node: str
    kind: str  # "node" | "endpoint"
    protocol: str  # "icmp" | "http"
    ip: str


def paths_of(target: NodeTarget) -> list[PathKey]:
    out = []
    for kind, ip in (("node", target.node_ip), ("endpoint", target.health_ip)):
        if ip:
            out += [PathKey(target.name, kind, "icmp", ip), PathKey(target.name, kind, "http", ip)]
    return out


@dataclass(frozen=True)
class Thresholds:
    loss_ratio: float = 0.05
    jitter_seconds: float = 0.02
    min_samples: int = 5  # no verdict on a path probed fewer times than this

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss_ratio <= 1.0:
            raise ValueError(f"loss threshold: {self.loss_ratio} is not in [0, 1]")
        if self.jitter_seconds <= 0:
            raise ValueError(f"jitter threshold: {self.jitter_seconds} must be positive")
        if self.min_samples < 1:
            raise ValueError(f"min samples: {self.min_samples} must be at least 1")


@dataclass(frozen=True)
class Alert:
    source: str
    path: PathKey
    metric: str  # "loss" | "jitter"
    value: float
    threshold: float

    def message(self) -> str:
        where = f"{self.source} -> {self.path.node} {self.path.kind} ({self.path.ip}) "
        if self.metric == "loss":
            return f"{where}{self.path.protocol} loss {self.value:.0%} > {self.threshold:.0%}"
        return (
            f"{where}{self.path.protocol} jitter {self.value * 1e3:.1f}ms "
            f"> {self.threshold * 1e3:.1f}ms"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.path.node,
            "kind": self.path.kind,
            "protocol": self.path.protocol,
            "ip": self.path.ip,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message(),
        }


def alerts(source: str, stats: dict[PathKey, PathStats], limits: Thresholds) -> list[Alert]:
    out = []
    for path, s in sorted(stats.items()):
        if s.sent < limits.min_samples:
            continue
        if s.loss_ratio > limits.loss_ratio:
            out.append(Alert(source, path, "loss", s.loss_ratio, limits.loss_ratio))
        # Jitter is judged on ICMP only: the kernel answers it (and stamps the reply),
        # while an HTTP round trip also measures two Python processes' scheduling.
        if path.protocol == "icmp" and s.jitter is not None and s.jitter > limits.jitter_seconds:
            out.append(Alert(source, path, "jitter", s.jitter, limits.jitter_seconds))
    return out


class HealthChecker:
    """Probes in rounds; keeps one window per path; paths of vanished nodes are dropped."""

    def __init__(
        self,
        source: str,
        probes: dict[str, Probe],
        *,
        window: int = 30,
        interval: float = 1.0,
        timeout: float = 1.0,
        thresholds: Thresholds | None = None,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.source = source
        self.thresholds = thresholds or Thresholds()
        self._probes = probes
        self._size = window
        self.interval = interval
        self.timeout = timeout
        self._windows: dict[PathKey, ProbeWindow] = {}
        self.rounds = 0
        self.last_round = 0.0  # time.time() of the last completed round

    def set_targets(self, targets: Iterable[NodeTarget]) -> None:
        wanted = {p for t in targets for p in paths_of(t)}
        for path in [p for p in self._windows if p not in wanted]:
            del self._windows[path]
        for path in wanted:
            self._windows.setdefault(path, ProbeWindow(self._size))

    async def probe_once(self) -> None:
        paths = sorted(self._windows)
        results = await asyncio.gather(
            *(self._probes[p.protocol](p.ip, self.timeout) for p in paths)
        )
        for path, rtt in zip(paths, results, strict=True):
            window = self._windows.get(path)
            if window is not None:  # targets may have changed while probing
                window.add(rtt)
        self.rounds += 1
        self.last_round = time.time()

    async def run(self, targets: Callable[[], Iterable[NodeTarget]]) -> None:
        while True:
            started = time.monotonic()
            self.set_targets(targets())
            await self.probe_once()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def stats(self) -> dict[PathKey, PathStats]:
        return {path: w.stats() for path, w in self._windows.items()}

    def report(self) -> dict[str, object]:
        """The API's view (``/v1/health``): per node, per path, and the alerts."""
        stats = self.stats()
        nodes: dict[str, dict[str, object]] = {}
        for path, s in sorted(stats.items()):
            node = nodes.setdefault(path.node, {"name": path.node, "paths": []})
            paths = node["paths"]
            assert isinstance(paths, list)
            paths.append(
                {"kind": path.kind, "protocol": path.protocol, "ip": path.ip, **s.to_json()}
            )
        for node in nodes.values():
            paths = node["paths"]
            assert isinstance(paths, list)
            node["reachable"] = bool(paths) and all(p["lastOk"] for p in paths)
        return {
            "source": self.source,
            "intervalSeconds": self.interval,
            "window": self._size,
            "rounds": self.rounds,
            "lastRound": self.last_round,
            "thresholds": {
                "lossRatio": self.thresholds.loss_ratio,
                "jitterSeconds": self.thresholds.jitter_seconds,
            },
            "nodes": list(nodes.values()),
            "alerts": [a.to_json() for a in alerts(self.source, stats, self.thresholds)],
        }
