"""Agent component: conntrack garbage collection every ``INTERVAL`` seconds, with metrics.

Families (Cilium's ``cilium_datapath_conntrack_gc_*`` with the agent prefix):
``axoneme_datapath_conntrack_gc_entries{status="alive"|"deleted"}`` (the last
run), ``axoneme_datapath_conntrack_gc_runs_total`` and
``axoneme_datapath_conntrack_gc_duration_seconds`` (the last run).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from axoneme.datapath.ctgc import GCResult, collect
from axoneme.datapath.linux.maps import CTMap
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


def collect_pinned(pin_dir: Path) -> GCResult:
    """One pass on a private handle (the agent's map objects belong to other threads)."""
    with CTMap.open(pin_dir) as ct:
        return collect(ct)


def record(result: GCResult) -> None:
    ENTRIES.labels("alive").set(result.alive)
    ENTRIES.labels("deleted").set(result.deleted)
    DURATION.set(result.seconds)
    RUNS.inc()


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
        await asyncio.sleep(interval)
