"""Agent component: conntrack garbage collection every ``INTERVAL`` seconds, with metrics.

Families (Cilium's ``cilium_datapath_conntrack_gc_*`` with the agent prefix):
``axoneme_datapath_conntrack_gc_entries{status="alive"|"deleted"}`` (the last
run), ``axoneme_datapath_conntrack_gc_runs_total`` and
``axoneme_datapath_conntrack_gc_duration_seconds`` (the last run).

The same pass walks the north-south NAT map ``axo_lb_nat`` when the node has
one (NodePort on), with its own families as Cilium's ``cilium_datapath_nat_gc_entries``:
``axoneme_datapath_nat_gc_entries{status}``, ``axoneme_datapath_nat_gc_runs_total``
and ``axoneme_datapath_nat_gc_duration_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from axoneme.datapath.ctgc import GCResult, collect, collect_nat
from axoneme.datapath.linux.lbmaps import NAT_VALUE
from axoneme.datapath.linux.maps import CTMap, NatMap
from axoneme.metrics import REGISTRY

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger(__name__)

INTERVAL = 30.0
ENTRIES = Gauge(
    "axoneme_datapath_conntrack_gc_entries",
    "Conntrack entries the last GC run found alive or deleted",
    ["status"],
    registry=REGISTRY,
)
RUNS = Counter(
    "axoneme_datapath_conntrack_gc_runs", "Conntrack GC runs completed", registry=REGISTRY
)
DURATION = Gauge(
    "axoneme_datapath_conntrack_gc_duration_seconds",
    "Duration of the last conntrack GC run",
    registry=REGISTRY,
)

NAT_ENTRIES = Gauge(
    "axoneme_datapath_nat_gc_entries",
    "North-south NAT entries the last GC run found alive or deleted",
    ["status"],
    registry=REGISTRY,
)
NAT_RUNS = Counter("axoneme_datapath_nat_gc_runs", "NAT GC runs completed", registry=REGISTRY)
NAT_DURATION = Gauge(
    "axoneme_datapath_nat_gc_duration_seconds",
    "Duration of the last NAT GC run",
    registry=REGISTRY,
)


def collect_pinned(pin_dir: Path) -> GCResult:
    """One pass on a private handle (the agent's map objects belong to other threads)."""
    with CTMap.open(pin_dir) as ct:
        return collect(ct)


def collect_nat_pinned(pin_dir: Path) -> GCResult | None:
    """One pass over ``axo_lb_nat``; None when the node has none (NodePort off), or
    an older one without lifetimes (adopted from before they existed)."""
    if not (pin_dir / NatMap.NAME).exists():
        return None
    with NatMap.open(pin_dir) as nat:
        if nat.raw.value_bytes != NAT_VALUE.size:
            return None
        return collect_nat(nat)


def record(result: GCResult) -> None:
    ENTRIES.labels("alive").set(result.alive)
    ENTRIES.labels("deleted").set(result.deleted)
    DURATION.set(result.seconds)
    RUNS.inc()


def record_nat(result: GCResult) -> None:
    NAT_ENTRIES.labels("alive").set(result.alive)
    NAT_ENTRIES.labels("deleted").set(result.deleted)
    NAT_DURATION.set(result.seconds)
    NAT_RUNS.inc()


async def _nat_pass(pin_dir: Path) -> None:
    try:
        result = await asyncio.to_thread(collect_nat_pinned, pin_dir)
    except OSError as exc:  # retried at the next interval
        log.warning("NAT GC: %s", exc)
        return
    if result is None:
        return
    record_nat(result)
    if result.deleted:
        log.info(
            "NAT GC: %d deleted, %d alive (%.1f ms)",
            result.deleted,
            result.alive,
            result.seconds * 1e3,
        )


async def run(ctx: AgentContext, interval: float = INTERVAL) -> None:
    while True:
        try:
            result = await asyncio.to_thread(collect_pinned, ctx.kernel.dp.pin_dir)
        except OSError as exc:  # retried at the next interval
            log.warning("conntrack GC: %s", exc)
        else:
            record(result)
            if result.deleted:
                log.info(
                    "conntrack GC: %d deleted, %d alive (%.1f ms)",
                    result.deleted,
                    result.alive,
                    result.seconds * 1e3,
                )
        await _nat_pass(ctx.kernel.dp.pin_dir)
        await asyncio.sleep(interval)
