"""Agent component: TCP retransmissions per flow (``--enable-tcp-retransmit-tracking``).

Loads ``bpf_tcpretrans.o`` at ``tp_btf/tcp_retransmit_skb`` into the node's
pin directory (datapath/linux/tcpretrans.py), then every ``REFRESH`` seconds
reads its per-4-tuple counts and

- adds what each flow gained since the last reading to
  ``axoneme_tcp_retransmits_total{source, destination}``, labelled by
  workload (``namespace/app``, else ``namespace/pod``, else ``other``) so a
  busy node's many ports and client addresses do not each make a series;
- keeps the last reading, with pod names, for ``GET /v1/tcp-retransmits``
  (``axoneme bpf retrans list``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from axoneme.datapath.linux import tcpretrans
from axoneme.datapath.linux.tcpretrans import RetransEntry
from axoneme.metrics import REGISTRY
from axoneme.observer.flow import EndpointResolver, FlowEndpoint

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger(__name__)

__all__ = ["RETRANSMITS", "FlowKey", "advance", "flow_json", "run", "workload_label"]

REFRESH = 2.0
RETRANSMITS = Counter(
    "axoneme_tcp_retransmits",
    "TCP segments retransmitted by this node's endpoints, by source and destination workload",
    ["source", "destination"],
    registry=REGISTRY,
)

FlowKey = tuple[str, int, str, int]


def _key(e: RetransEntry) -> FlowKey:
    return (e.saddr, e.sport, e.daddr, e.dport)


def advance(
    previous: Mapping[FlowKey, int], entries: Iterable[RetransEntry]
) -> tuple[dict[FlowKey, int], list[tuple[RetransEntry, int]]]:
    """What each flow gained since ``previous`` (pure).

    Returns the new reading and the flows with a positive gain. A count below
    the previous one means the LRU evicted the flow and it came back: all of
    its count is new. Flows gone from the map are forgotten."""
    current: dict[FlowKey, int] = {}
    gains: list[tuple[RetransEntry, int]] = []
    for e in entries:
        key = _key(e)
        current[key] = e.segments
        before = previous.get(key, 0)
        gain = e.segments - before if e.segments >= before else e.segments
        if gain > 0:
            gains.append((e, gain))
    return current, gains


def workload_label(ep: FlowEndpoint) -> str:
    """A bounded label value for one side: its workload, else its pod, else ``other``."""
    if not ep.pod_name:
        return "other"
    if ep.workloads:
        return f"{ep.namespace}/{ep.workloads[0].name}"
    return ep.pod_ref


def _side(ip: str, port: int, ep: FlowEndpoint) -> dict[str, Any]:
    return {"ip": ip, "port": port, "namespace": ep.namespace, "pod": ep.pod_name}


def flow_json(e: RetransEntry, names: EndpointResolver, now_ns: int) -> dict[str, Any]:
    """One flow for the API: both sides with pod names where known (pure)."""
    return {
        "source": _side(e.saddr, e.sport, names.endpoint(e.saddr, 0)),
        "destination": _side(e.daddr, e.dport, names.endpoint(e.daddr, 0)),
        "segments": e.segments,
        "firstSeenSecondsAgo": round(max(0, now_ns - e.first_seen_ns) / 1e9, 1),
        "lastSeenSecondsAgo": round(max(0, now_ns - e.last_seen_ns) / 1e9, 1),
    }


def _publish(
    ctx: AgentContext, entries: list[RetransEntry], gains: list[tuple[RetransEntry, int]]
) -> list[dict[str, Any]]:
    """Count the gains in the metric and name the flows for the API."""
    from axoneme.observer.agent import agent_directory

    names = agent_directory(ctx)  # rebuilt per reading, and only when there are flows
    for entry, gain in gains:
        src = workload_label(names.endpoint(entry.saddr, 0))
        dst = workload_label(names.endpoint(entry.daddr, 0))
        RETRANSMITS.labels(src, dst).inc(gain)
    now = time.monotonic_ns()
    return [flow_json(e, names, now) for e in entries]


async def run(ctx: AgentContext, refresh: float = REFRESH) -> None:
    if not ctx.config.tcp_retransmit_tracking:
        return
    pin_dir = ctx.kernel.dp.pin_dir
    try:
        loaded = await asyncio.to_thread(tcpretrans.load, pin_dir)
    except (OSError, tcpretrans.TcpRetransError) as exc:
        # An observability extra: the agent goes on without it (the API says it is off).
        log.error("TCP retransmit tracking unavailable: %s", exc)
        return
    log.info("TCP retransmit tracking %s in %s", "loaded" if loaded else "adopted", pin_dir)
    flows: list[dict[str, Any]] = []
    ctx.service.tcp_retransmits = lambda: flows
    previous: dict[FlowKey, int] = {}
    try:
        while True:
            try:
                entries = await asyncio.to_thread(tcpretrans.read, pin_dir)
            except OSError as exc:  # retried at the next refresh
                log.warning("TCP retransmits: %s", exc)
            else:
                previous, gains = advance(previous, entries)
                flows = _publish(ctx, entries, gains) if entries else []
            await asyncio.sleep(refresh)
    finally:
        ctx.service.tcp_retransmits = None
