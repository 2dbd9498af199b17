"""The observer: takes batches of raw datapath events, keeps them, serves flows.

Runs on the agent's event loop. The ring-buffer reader thread hands over
whole batches (:meth:`Observer.offer`); when the loop is that far behind
that more than ``max_pending`` events wait, a batch is dropped and counted
(OBSERVER_EVENTS_QUEUE) instead of making the reader, and so the kernel's
ring, wait. A following client that falls behind the ring loses the flows it
missed and is told how many (HUBBLE_RING_BUFFER). Nothing here ever waits on
a client.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from axoneme.observer.convert import fill_flow, timestamp
from axoneme.observer.directory import Directory
from axoneme.observer.filters import FilterError, FlowFilters, compile_filters
from axoneme.observer.flow import Flow
from axoneme.observer.metrics import FlowMetrics
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.ring import FlowRing

__all__ = ["DEFAULT_CAPACITY", "FlowQuery", "Observer", "parse_request"]

DEFAULT_CAPACITY = 4095  # Hubble's default: 2^12 - 1
VERSION = "axoneme-0.1.0"


@dataclass(frozen=True)
class FlowQuery:
    """A validated GetFlowsRequest."""

    number: int
    first: bool
    follow: bool
    filters: FlowFilters
    since_ns: int | None
    until_ns: int | None


def _ts_ns(ts: object) -> int:
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)  # type: ignore[attr-defined]


def parse_request(req: pb.GetFlowsRequest) -> FlowQuery:
    """Validate a request once (raises :class:`FilterError` naming the field)."""
    if req.first and req.follow:
        raise FilterError("first", "cannot be combined with follow")
    if req.first and not req.number:
        raise FilterError("number", "first needs a number of flows")
    since = _ts_ns(req.since) if req.HasField("since") else None
    until = _ts_ns(req.until) if req.HasField("until") else None
    for name, value in (("since", since), ("until", until)):
        if value is not None and value < 0:
            raise FilterError(name, "must not be before 1970")
    if since is not None and until is not None and until < since:
        raise FilterError("until", "is before since")
    filters = compile_filters(req.whitelist, req.blacklist)
    return FlowQuery(req.number, req.first, req.follow, filters, since, until)


class Observer:
    def __init__(
        self,
        node: str,
        metrics: FlowMetrics | None = None,
        capacity: int = DEFAULT_CAPACITY,
        max_pending: int = 1 << 20,
    ) -> None:
        self.node = node
        self.started_ns = time.time_ns()
        self._started_mono = time.monotonic_ns()
        self.ring = FlowRing(capacity, node, time.time_ns() - time.monotonic_ns())
        self.metrics = metrics
        self.max_pending = max_pending
        self.lost_ring_buffer = 0  # the kernel's ring was full (set by the reader)
        self.lost_queue = 0  # batches dropped between the reader and the loop
        self.lost_clients = 0  # flows following clients missed
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._wakeup = asyncio.Event()
        self._rate: collections.deque[tuple[float, int]] = collections.deque(maxlen=61)
        self._directory_source: Callable[[], Directory] | None = None
        self._directory_key_fn: Callable[[], object] = lambda: None
        self._directory_key: object = None
        # Called with every batch after it is kept (e.g. the monitor feed).
        self.listeners: list[Callable[[np.ndarray], None]] = []

    # ---- writing (the reader thread and the loop) ---------------------------------

    def offer(self, loop: asyncio.AbstractEventLoop, records: np.ndarray) -> bool:
        """From the reader thread: queue a batch for the loop; False if dropped."""
        n = records.shape[0]
        with self._pending_lock:
            if self._pending + n > self.max_pending:
                self.lost_queue += n
                if self.metrics:
                    self.metrics.lost.labels("observer_events_queue").inc(n)
                return False
            self._pending += n
        loop.call_soon_threadsafe(self._ingest_pending, records)
        return True

    def _ingest_pending(self, records: np.ndarray) -> None:
        with self._pending_lock:
            self._pending -= records.shape[0]
        self.ingest(records)

    def set_directory_source(
        self, source: Callable[[], Directory], key: Callable[[], object]
    ) -> None:
        """Where enrichment comes from: ``source`` is called again whenever ``key`` changes."""
        self._directory_source = source
        self._directory_key_fn = key

    def _refresh_directory(self) -> None:
        if self._directory_source is None:
            return
        key = self._directory_key_fn()
        if key != self._directory_key:
            self._directory_key = key
            self.ring.set_resolver(self._directory_source())

    def ingest(self, records: np.ndarray) -> None:
        """On the loop: keep a batch, count it, wake the followers."""
        if records.shape[0] == 0:
            return
        self._refresh_directory()
        self.ring.extend(records)
        if self.metrics:
            self.metrics.count(records)
        for listener in self.listeners:
            listener(records)
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def add_lost_ring_buffer(self, n: int) -> None:
        if n > 0:
            self.lost_ring_buffer += n
            if self.metrics:
                self.metrics.lost.labels("perf_event_ring_buffer").inc(n)

    # ---- status -------------------------------------------------------------------

    @property
    def seen(self) -> int:
        return self.ring.head

    def flows_rate(self) -> float:
        now = time.monotonic()
        self._rate.append((now, self.ring.head))
        while len(self._rate) > 1 and now - self._rate[0][0] > 60:
            self._rate.popleft()
        (t0, n0), (t1, n1) = self._rate[0], self._rate[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def status(self) -> pb.ServerStatusResponse:
        return pb.ServerStatusResponse(
            num_flows=len(self.ring),
            max_flows=self.ring.capacity,
            seen_flows=self.seen,
            uptime_ns=time.monotonic_ns() - self._started_mono,
            version=VERSION,
            flows_rate=self.flows_rate(),
            lost_ring_buffer=self.lost_ring_buffer,
            lost_events_queue=self.lost_queue,
            lost_client_streams=self.lost_clients,
        )

    def node_info(self, address: str = "") -> pb.Node:
        return pb.Node(
            name=self.node,
            version=VERSION,
            address=address,
            state=pb.NODE_CONNECTED,
            uptime_ns=time.monotonic_ns() - self._started_mono,
            num_flows=len(self.ring),
            max_flows=self.ring.capacity,
            seen_flows=self.seen,
        )

    def namespaces(self) -> list[str]:
        seen: set[str] = set()
        for flow in self.ring.flows(self.ring.oldest, self.ring.head):
            seen.update(ns for ns in (flow.source.namespace, flow.destination.namespace) if ns)
        return sorted(seen)

    # ---- reading -------------------------------------------------------------------

    def history(self, query: FlowQuery) -> list[Flow]:
        """The flows a request selects from what the ring holds now, oldest first."""

        def wanted(flow: Flow) -> bool:
            if query.since_ns is not None and flow.time_ns < query.since_ns:
                return False
            if query.until_ns is not None and flow.time_ns > query.until_ns:
                return False
            return query.filters(flow)

        flows = self.ring.flows(self.ring.oldest, self.ring.head)
        if query.number == 0:
            return [] if query.follow else [f for f in flows if wanted(f)]
        out: list[Flow] = []
        for flow in flows if query.first else reversed(flows):
            if wanted(flow):
                out.append(flow)
                if len(out) >= query.number:
                    break
        return out if query.first else out[::-1]

    async def follow(self, query: FlowQuery, cursor: int) -> AsyncIterator[Flow | int]:
        """Live flows from ``cursor`` on; an ``int`` item is a count of flows lost."""
        while True:
            if cursor >= self.ring.head:
                await self._wakeup.wait()
                continue
            if cursor < self.ring.oldest:
                lost = self.ring.oldest - cursor
                self.lost_clients += lost
                if self.metrics:
                    self.metrics.lost.labels("hubble_ring_buffer").inc(lost)
                yield lost
                cursor = self.ring.oldest
            head = self.ring.head
            for flow in self.ring.flows(cursor, head):
                if query.until_ns is not None and flow.time_ns > query.until_ns:
                    return
                if (query.since_ns is None or flow.time_ns >= query.since_ns) and query.filters(
                    flow
                ):
                    yield flow
            cursor = max(cursor, head)

    async def get_flows(self, query: FlowQuery) -> AsyncIterator[pb.GetFlowsResponse]:
        """The GetFlows stream: history, then (with follow) live flows."""
        head = self.ring.head
        for flow in self.history(query):
            yield response(flow)
        if not query.follow:
            return
        async for item in self.follow(query, head):
            if isinstance(item, int):
                yield pb.GetFlowsResponse(
                    lost_events=pb.LostEvent(source=pb.HUBBLE_RING_BUFFER, num_events_lost=item),
                    node_name=self.node,
                    time=timestamp(time.time_ns()),
                )
            else:
                yield response(item)


def response(flow: Flow) -> pb.GetFlowsResponse:
    resp = pb.GetFlowsResponse(node_name=flow.node_name)
    fill_flow(resp.flow, flow)
    resp.time.CopyFrom(resp.flow.time)
    return resp
