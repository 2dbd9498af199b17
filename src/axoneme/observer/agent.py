"""The observer as an agent component: ring-buffer reader, gRPC servers, /metrics.

One thread reads ``axo_events`` in batches (``ringbatch``) and offers them to
the observer on the loop; the loop also feeds ``axoneme monitor`` (the
EventHub) from the same batches, so the ring has exactly one consumer. The
kernel's ring-full counter is polled once a second and reported as lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from aiohttp import web

from axoneme.datapath import events
from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.maps import MetricsMap
from axoneme.datapath.linux.ringbatch import RingBatchReader
from axoneme.labels.model import format_labels
from axoneme.metrics import REGISTRY
from axoneme.metrics.http import metrics_app
from axoneme.observer.config import SOCKET_NAME, parse_listen_address
from axoneme.observer.core import Observer
from axoneme.observer.directory import Directory, EndpointMeta, ServiceLookup, build_directory
from axoneme.observer.metrics import FlowMetrics
from axoneme.observer.server import NodeBackend, start_server

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

__all__ = ["register_service_lookup", "run"]

log = logging.getLogger(__name__)

COALESCE_BYTES = 1 << 18  # about 3,600 events
COALESCE_SECONDS = 0.0005

_service_lookup: list[ServiceLookup] = []


def register_service_lookup(lookup: ServiceLookup) -> None:
    """The load balancer's hook: name the service a flow's destination belongs to."""
    _service_lookup[:] = [lookup]


def _services(ip: str, port: int, protocol: int) -> str:
    return _service_lookup[0](ip, port, protocol) if _service_lookup else ""


def agent_directory(ctx: AgentContext) -> Directory:
    enf = ctx.enforcement
    metas = [
        EndpointMeta(
            r.ipv4, r.namespace, r.name, int(r.identity), tuple(format_labels(r.labels)), 0, ""
        )
        for r in enf.ceps.values()
    ]
    metas += [
        EndpointMeta(ep.ipv4, ep.namespace, ep.pod, ep.identity or 0, (), ep.id, ctx.config.node)
        for ep in ctx.manager.endpoints()
    ]
    labels = {**enf.identities.all(), **enf.cidr.identities()}
    return build_directory(metas, {num: format_labels(ls) for num, ls in labels.items()}, _services)


def _directory_key(ctx: AgentContext) -> object:
    enf = ctx.enforcement
    return (enf.seen_revision, enf.regenerations, enf.identities.revision,
            tuple(ep.id for ep in ctx.manager.endpoints()))  # fmt: skip


def read_ring(
    reader: RingBatchReader,
    observer: Observer,
    loop: asyncio.AbstractEventLoop,
    running: threading.Event,
) -> None:
    """The reader thread: every committed record, in batches, to the loop."""
    while running.is_set():
        if not reader.wait(0.1):
            continue
        if reader.pending_bytes() < COALESCE_BYTES:
            # Let a burst accumulate: one batch of thousands costs what one of ten does.
            time.sleep(COALESCE_SECONDS)
        batch = reader.read()
        if batch.records.shape[0]:
            observer.offer(loop, batch.records)


def hub_feed(ctx: AgentContext) -> Callable[[np.ndarray], None]:
    """Publish a batch to ``axoneme monitor`` subscribers (decoded only if there are any)."""
    from axoneme.agent.daemon import event_json

    def feed(records: np.ndarray) -> None:
        if ctx.hub.subscribers:
            for raw in records:
                ctx.hub.publish(event_json(events.decode(raw.tobytes())))

    return feed


async def _poll_ring_full(ctx: AgentContext, observer: Observer) -> None:
    counters = MetricsMap(bpfsys.BpfMap.open_pinned(ctx.config.bpf_pin_dir / MetricsMap.NAME))
    try:
        # The pinned counter outlives agents: report what is lost from now on.
        last = await asyncio.to_thread(counters.lost_events)
        while True:
            await asyncio.sleep(1.0)
            now = await asyncio.to_thread(counters.lost_events)
            observer.add_lost_ring_buffer(now - last)
            last = now
    finally:
        counters.close()


async def run(ctx: AgentContext) -> None:
    cfg = ctx.config.observer
    socket = cfg.socket or ctx.config.socket.parent / SOCKET_NAME
    loop = asyncio.get_running_loop()
    observer = Observer(ctx.config.node, FlowMetrics(REGISTRY), cfg.capacity)
    observer.set_directory_source(lambda: agent_directory(ctx), lambda: _directory_key(ctx))
    observer.listeners.append(hub_feed(ctx))
    fd = bpfsys.obj_get(ctx.config.bpf_pin_dir / "axo_events")
    try:
        reader = RingBatchReader(fd, events.EVENT_SIZE)
    finally:
        os.close(fd)
    running = threading.Event()
    running.set()
    reading = asyncio.ensure_future(asyncio.to_thread(read_ring, reader, observer, loop, running))
    server = None
    metrics_runner: web.AppRunner | None = None
    try:
        server = await start_server(NodeBackend(observer), socket, cfg.listen_address)
        log.info(
            "observer serving on %s%s (%d flows kept)",
            socket,
            f" and {cfg.listen_address}" if cfg.listen_address else "",
            cfg.capacity,
        )
        if cfg.metrics_address:
            host, port = parse_listen_address("--prometheus-serve-addr", cfg.metrics_address)
            metrics_runner = web.AppRunner(metrics_app(), access_log=None)
            await metrics_runner.setup()
            await web.TCPSite(metrics_runner, host, port).start()
            log.info("metrics on %s:%d/metrics", host, port)
        await _poll_ring_full(ctx, observer)
    finally:
        running.clear()
        if server is not None:
            await server.stop(0.5)
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await asyncio.shield(reading)
        reader.close()
        if socket.is_socket():
            socket.unlink()
