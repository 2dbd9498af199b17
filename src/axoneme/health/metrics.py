"""Prometheus families of the health checker (Cilium's ``node_connectivity_*``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from axoneme.health.checker import HealthChecker, alerts

__all__ = ["HealthCollector"]

LABELS = ["source_node", "target_node", "type", "protocol"]


class HealthCollector(Collector):
    def __init__(self, checker: HealthChecker) -> None:
        self._checker = checker

    def collect(self) -> Iterator[Metric]:
        checker = self._checker
        stats = checker.stats()
        status = GaugeMetricFamily(
            "axoneme_node_connectivity_status",
            "1 if the last probe of the path was answered, else 0",
            labels=LABELS,
        )
        latency = GaugeMetricFamily(
            "axoneme_node_connectivity_latency_seconds",
            "Mean round-trip time of the answered probes in the window",
            labels=LABELS,
        )
        jitter = GaugeMetricFamily(
            "axoneme_node_connectivity_jitter_seconds",
            "Mean difference between consecutive round-trip times in the window",
            labels=LABELS,
        )
        loss = GaugeMetricFamily(
            "axoneme_node_connectivity_loss_ratio",
            "Share of the window's probes that got no answer",
            labels=LABELS,
        )
        unreachable: dict[str, set[str]] = {"node": set(), "endpoint": set()}
        for path, s in sorted(stats.items()):
            labels = [checker.source, path.node, path.kind, path.protocol]
            status.add_metric(labels, 1.0 if s.last_ok else 0.0)
            loss.add_metric(labels, s.loss_ratio)
            if s.latency is not None:
                latency.add_metric(labels, s.latency)
            if s.jitter is not None:
                jitter.add_metric(labels, s.jitter)
            if s.sent and not s.last_ok:
                unreachable[path.kind].add(path.node)
        yield from (status, latency, jitter, loss)
        nodes = GaugeMetricFamily("axoneme_unreachable_nodes", "Nodes whose address fails probes")
        nodes.add_metric([], len(unreachable["node"]))
        endpoints = GaugeMetricFamily(
            "axoneme_unreachable_health_endpoints", "Health endpoints that fail probes"
        )
        endpoints.add_metric([], len(unreachable["endpoint"]))
        active = GaugeMetricFamily(
            "axoneme_node_connectivity_alerts",
            "Paths over the loss or jitter threshold",
            labels=["metric"],
        )
        found = alerts(checker.source, stats, checker.thresholds)
        for metric in ("loss", "jitter"):
            active.add_metric([metric], sum(a.metric == metric for a in found))
        yield from (nodes, endpoints, active)
