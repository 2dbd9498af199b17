"""The agent's own Prometheus families (Cilium's agent metrics, ``axoneme_`` prefix).

Three kinds of source, each read where it is cheap:

- in-memory agent state (endpoints by state, identities by type, policy
  revision and count, regenerations) is read at scrape time by
  :class:`AgentCollector`: plain attribute reads on the event loop;
- the kernel (BPF map fill levels, the datapath's per-reason drop counters in
  ``axo_metrics``) is read by :func:`refresh_kernel` on a worker thread every
  few seconds, because walking a large conntrack map must not stall the loop;
  scrapes return the last reading;
- events (a regeneration's duration, a CNI request) are observed as they
  happen on the module-level families below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from axoneme.datapath import reasons
from axoneme.datapath.linux.bpfsys import BpfMap, MapType
from axoneme.datapath.linux.maps import MetricsMap
from axoneme.identity.reserved import RESERVED, is_local
from axoneme.metrics import REGISTRY

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext
    from axoneme.agent.enforcement import RegenerationStats

log = logging.getLogger(__name__)

__all__ = [
    "CNI_REQUESTS",
    "REGENERATION_SECONDS",
    "AgentCollector",
    "KernelReading",
    "count_entries",
    "identity_types",
    "observe_cni",
    "observe_regeneration",
    "read_kernel",
    "run",
]

REFRESH_SECONDS = 5.0
# Map types whose fill level means something: an array is always "full".
COUNTED_TYPES = frozenset(
    {MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE}
)

REGENERATION_SECONDS = Histogram(
    "axoneme_policy_regeneration_time_stats_seconds",
    "Time one policy regeneration took (identities, policy, ipcache into the maps)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
CNI_REQUESTS = Counter(
    "axoneme_cni_requests_total",
    "CNI requests the agent answered, by command and outcome",
    ["command", "outcome"],
    registry=REGISTRY,
)


def observe_regeneration(stats: RegenerationStats) -> None:
    REGENERATION_SECONDS.observe(stats.seconds)


def observe_cni(command: str, ok: bool) -> None:
    CNI_REQUESTS.labels(command, "success" if ok else "failure").inc()


# ---- pure computations -------------------------------------------------------------


def identity_types(identities: Iterable[int]) -> dict[str, int]:
    """Count identities as Cilium's ``identity{type}``: reserved, cluster, node_local."""
    reserved = set(RESERVED.values())
    counts = {"reserved": 0, "cluster": 0, "node_local": 0}
    for identity in identities:
        if identity in reserved:
            counts["reserved"] += 1
        elif is_local(identity):
            counts["node_local"] += 1
        else:
            counts["cluster"] += 1
    return counts


@dataclass(frozen=True)
class MapFill:
    entries: int
    max_entries: int

    @property
    def pressure(self) -> float:
        """Fill ratio, as Cilium's ``bpf_map_pressure`` (0 for a map of no size)."""
        return self.entries / self.max_entries if self.max_entries else 0.0


@dataclass(frozen=True)
class KernelReading:
    maps: Mapping[str, MapFill] = field(default_factory=dict)
    drops: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # reason → (pkts, bytes)
    lost_events: int = 0


# ---- kernel reads (worker thread) -------------------------------------------------


# Above this value size a key walk is cheaper than copying every value (Maglev
# tables are 64 KiB each: 10,000 services would be 640 MiB copied a scrape).
_BATCH_COUNT_MAX_VALUE = 1024


def count_entries(m: BpfMap) -> int:
    """How many elements a map holds: batch reads for hashes with small values, else a key walk."""
    if m.type in MapType.BATCH and m.value_bytes <= _BATCH_COUNT_MAX_VALUE:
        with contextlib.suppress(OSError):
            return len(m.lookup_batch())
    return sum(1 for _ in m.iter_keys())


def read_kernel(pin_dir: Path) -> KernelReading:
    """Fill level of every pinned hash/LRU/LPM map, and the datapath's drop counters.

    Maps are found by listing the pin directory, so maps other subsystems add
    later are covered without a change here; program and link pins are skipped."""
    maps: dict[str, MapFill] = {}
    drops: dict[int, tuple[int, int]] = {}
    lost = 0
    for path in sorted(pin_dir.iterdir()) if pin_dir.is_dir() else []:
        if path.name.startswith(("prog_", "link_")) or not path.is_file():
            continue
        try:
            m = BpfMap.open_pinned(path)
        except OSError:
            continue  # not a map, or gone meanwhile
        with m:
            try:
                if path.name == MetricsMap.NAME:
                    for reason, metric in MetricsMap(m).read().items():
                        if reason == MetricsMap.RING_FULL:
                            lost = metric.packets
                        elif reason not in MetricsMap.FORWARDING:  # redirect counters
                            drops[reason] = (metric.packets, metric.bytes)
                elif m.type in COUNTED_TYPES:
                    maps[path.name] = MapFill(count_entries(m), m.max_entries)
            except OSError as exc:
                log.debug("cannot read %s: %s", path, exc)
    return KernelReading(maps, drops, lost)


# ---- the scrape-time collector ---------------------------------------------------


class AgentCollector(Collector):
    """Families computed from the running agent at scrape time."""

    def __init__(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._kernel = KernelReading()

    def update_kernel(self, reading: KernelReading) -> None:
        with self._lock:
            self._kernel = reading

    def collect(self) -> Iterator[Metric]:
        ctx = self._ctx
        endpoints = ctx.manager.endpoints()
        total = GaugeMetricFamily("axoneme_endpoint", "Endpoints on this node")
        total.add_metric([], len(endpoints))
        yield total
        by_state = GaugeMetricFamily(
            "axoneme_endpoint_state", "Endpoints on this node by state", labels=["endpoint_state"]
        )
        for state in ("creating", "ready", "not-ready"):
            by_state.add_metric([state], sum(ep.state == state for ep in endpoints))
        yield by_state

        e = ctx.enforcement
        ids = identity_types([*e.identities.all(), *e.cidr.identities()])
        identity = GaugeMetricFamily(
            "axoneme_identity", "Identities this node knows, by type", labels=["type"]
        )
        for kind, count in sorted(ids.items()):
            identity.add_metric([kind], count)
        yield identity
        policy = GaugeMetricFamily("axoneme_policy", "Policy objects loaded on this node")
        policy.add_metric([], len(e.policies))
        yield policy
        invalid = GaugeMetricFamily("axoneme_policy_invalid", "Policy objects ignored as invalid")
        invalid.add_metric([], len(e.policy_errors))
        yield invalid
        revision = GaugeMetricFamily(
            "axoneme_policy_max_revision", "Highest store revision the datapath enforces"
        )
        revision.add_metric([], e.realized_revision)
        yield revision
        regenerations = CounterMetricFamily(
            "axoneme_policy_regeneration", "Policy regenerations completed"
        )
        regenerations.add_metric([], e.regenerations)
        yield regenerations

        with self._lock:
            kernel = self._kernel
        pressure = GaugeMetricFamily(
            "axoneme_bpf_map_pressure",
            "Fill ratio of a BPF map (entries / max)",
            labels=["map_name"],
        )
        entries = GaugeMetricFamily(
            "axoneme_bpf_map_entries", "Elements in a BPF map", labels=["map_name"]
        )
        capacity = GaugeMetricFamily(
            "axoneme_bpf_map_capacity", "max_entries of a BPF map", labels=["map_name"]
        )
        for name, fill in sorted(kernel.maps.items()):
            pressure.add_metric([name], fill.pressure)
            entries.add_metric([name], fill.entries)
            capacity.add_metric([name], fill.max_entries)
        yield from (pressure, entries, capacity)
        drop_count = CounterMetricFamily(
            "axoneme_drop_count", "Packets the datapath dropped, by reason", labels=["reason"]
        )
        drop_bytes = CounterMetricFamily(
            "axoneme_drop_bytes", "Bytes the datapath dropped, by reason", labels=["reason"]
        )
        for code, (packets, size) in sorted(kernel.drops.items()):
            drop_count.add_metric([reasons.name(code)], packets)
            drop_bytes.add_metric([reasons.name(code)], size)
        yield from (drop_count, drop_bytes)
        lost = CounterMetricFamily(
            "axoneme_datapath_lost_events",
            "Datapath events lost because the ring buffer was full",
        )
        lost.add_metric([], kernel.lost_events)
        yield lost


async def run(ctx: AgentContext, refresh: float = REFRESH_SECONDS) -> None:
    """Agent component: register the collector and keep its kernel reading fresh."""
    collector = AgentCollector(ctx)
    REGISTRY.register(collector)
    ctx.enforcement.regeneration_observers.append(observe_regeneration)
    try:
        while True:
            started = time.monotonic()
            try:
                reading = await asyncio.to_thread(read_kernel, ctx.config.bpf_pin_dir)
                collector.update_kernel(reading)
            except OSError as exc:
                log.warning("cannot read the datapath's maps for metrics: %s", exc)
            await asyncio.sleep(max(0.5, refresh - (time.monotonic() - started)))
    finally:
        ctx.enforcement.regeneration_observers.remove(observe_regeneration)
        REGISTRY.unregister(collector)
