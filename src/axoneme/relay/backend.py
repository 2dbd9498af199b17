"""The relay's Observer: one cluster-wide view over every node's observer.

GetFlows asks every connected node with the same request (``number`` and
``first`` apply per node, as in Hubble Relay) and merges the answers by
time. Nodes that cannot be reached are reported in the stream as
NODE_UNAVAILABLE; while following, a node whose stream breaks is reported
unavailable and the others go on, and a node that comes back (or joins) is
followed again from then on (NODE_CONNECTED).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.wrappers_pb2 import UInt32Value
from prometheus_client import CollectorRegistry, Counter, Gauge

from axoneme.observer.convert import timestamp
from axoneme.observer.core import VERSION, FlowQuery
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.relay.merge import SortingBuffer, merge_history
from axoneme.relay.peers import Peer, Peers

__all__ = ["RelayBackend"]

_END = object()


def node_status(state: int, names: list[str], message: str = "") -> pb.GetFlowsResponse:
    return pb.GetFlowsResponse(
        node_status=pb.NodeStatusEvent(state_change=state, node_names=names, message=message),  # type: ignore[arg-type]
        time=timestamp(time.time_ns()),
    )


class RelayBackend:
    def __init__(self, peers: Peers, registry: CollectorRegistry, window_s: float = 0.1) -> None:
        self.peers = peers
        self.window_s = window_s
        self.started_ns = time.monotonic_ns()
        self.forwarded = Counter(
            "hubble_relay_flows_forwarded_total",
            "Flows the relay forwarded to its clients",
            registry=registry,
        )
        self.peer_states = Gauge(
            "hubble_relay_peers", "Observer peers by state", ["state"], registry=registry
        )
        for state in ("NODE_CONNECTED", "NODE_UNAVAILABLE"):
            self.peer_states.labels(state).set_function(self._counter(state))

    def _counter(self, state: str) -> Callable[[], float]:
        return lambda: sum(
            1 for p in self.peers.peers.values() if pb.NodeState.Name(p.state) == state
        )

    # ---- GetFlows ----------------------------------------------------------------------

    async def _history(self, peer: Peer, request: pb.GetFlowsRequest) -> list[pb.GetFlowsResponse]:
        return [r async for r in peer.stub.GetFlows(request)]

    async def get_flows(
        self, request: pb.GetFlowsRequest, query: FlowQuery
    ) -> AsyncIterator[pb.GetFlowsResponse]:
        if not request.follow:
            async for resp in self._get_history(request):
                yield resp
            return
        async for resp in self._follow(request):
            yield resp

    async def _get_history(self, request: pb.GetFlowsRequest) -> AsyncIterator[pb.GetFlowsResponse]:
        peers = self.peers.connected()
        down = sorted(n for n, p in self.peers.peers.items() if p not in peers)
        if down:
            yield node_status(pb.NODE_UNAVAILABLE, down)
        answers = await asyncio.gather(
            *(self._history(p, request) for p in peers), return_exceptions=True
        )
        streams: list[list[pb.GetFlowsResponse]] = []
        failed = []
        for peer, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException):
                failed.append(peer.name)
            else:
                streams.append(answer)
        if failed:
            yield node_status(pb.NODE_UNAVAILABLE, failed, "stream failed")
        for resp in merge_history(streams):
            self.forwarded.inc()
            yield resp

    async def _pump(
        self,
        peer: Peer,
        request: pb.GetFlowsRequest,
        out: asyncio.Queue[tuple[str, object]],
    ) -> None:
        try:
            async for resp in peer.stub.GetFlows(request):
                await out.put((peer.name, resp))
        except grpc.aio.AioRpcError as exc:
            await out.put((peer.name, exc))
        else:
            await out.put((peer.name, _END))

    async def _follow(self, request: pb.GetFlowsRequest) -> AsyncIterator[pb.GetFlowsResponse]:
        out: asyncio.Queue[tuple[str, object]] = asyncio.Queue(maxsize=10_000)
        pumps: dict[str, asyncio.Task[None]] = {}
        buffer = SortingBuffer(int(self.window_s * 1e9))
        live = pb.GetFlowsRequest()
        live.CopyFrom(request)
        live.number, live.first = 0, False  # a node (re)joining: from now on

        def start(peer: Peer, req: pb.GetFlowsRequest) -> None:
            pumps[peer.name] = asyncio.ensure_future(self._pump(peer, req, out))

        for peer in self.peers.connected():
            start(peer, request)
        down = sorted(n for n, p in self.peers.peers.items() if p.state != pb.NODE_CONNECTED)
        if down:
            yield node_status(pb.NODE_UNAVAILABLE, down)
        changed = asyncio.ensure_future(self.peers.changed.wait())
        try:
            while True:
                getter = asyncio.ensure_future(out.get())
                done, _ = await asyncio.wait(
                    {getter, changed}, timeout=self.window_s, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    name, item = getter.result()
                    if isinstance(item, pb.GetFlowsResponse):
                        for resp in buffer.push(item):
                            self.forwarded.inc()
                            yield resp
                    else:
                        pumps.pop(name, None)
                        message = item.details() if isinstance(item, grpc.aio.AioRpcError) else ""
                        yield node_status(pb.NODE_UNAVAILABLE, [name], message or "stream ended")
                else:
                    getter.cancel()
                    for resp in buffer.flush():  # quiet for a window: release everything
                        self.forwarded.inc()
                        yield resp
                if changed.done():
                    changed = asyncio.ensure_future(self.peers.changed.wait())
                    joined = [p for p in self.peers.connected() if p.name not in pumps]
                    for peer in joined:
                        start(peer, live)  # before yielding: the stream starts now
                    if joined:
                        yield node_status(pb.NODE_CONNECTED, sorted(p.name for p in joined))
        finally:
            changed.cancel()
            for task in pumps.values():
                task.cancel()
            for task in pumps.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ---- status ---------------------------------------------------------------------

    async def server_status(self) -> pb.ServerStatusResponse:
        connected = self.peers.connected()
        down = sorted(n for n, p in self.peers.peers.items() if p not in connected)
        total = pb.ServerStatusResponse(
            version=VERSION,
            uptime_ns=time.monotonic_ns() - self.started_ns,
            num_connected_nodes=UInt32Value(value=len(connected)),
            num_unavailable_nodes=UInt32Value(value=len(down)),
            unavailable_nodes=down,
        )
        for peer in connected:
            s = peer.status
            if s is None:
                continue
            total.num_flows += s.num_flows
            total.max_flows += s.max_flows
            total.seen_flows += s.seen_flows
            total.flows_rate += s.flows_rate
            total.lost_ring_buffer += s.lost_ring_buffer
            total.lost_events_queue += s.lost_events_queue
            total.lost_client_streams += s.lost_client_streams
        return total

    async def nodes(self) -> list[pb.Node]:
        out = []
        for name in sorted(self.peers.peers):
            peer = self.peers.peers[name]
            node = pb.Node(name=name, address=peer.address, state=peer.state)  # type: ignore[arg-type]
            if peer.state == pb.NODE_CONNECTED and peer.info is not None:
                node.MergeFrom(peer.info)
                node.address = peer.address
                node.state = pb.NODE_CONNECTED
            out.append(node)
        return out

    async def namespaces(self) -> list[str]:
        async def one(peer: Peer) -> list[str]:
            resp = await peer.stub.GetNamespaces(pb.GetNamespacesRequest(), timeout=2)
            return [n.namespace for n in resp.namespaces]

        got = await asyncio.gather(
            *(one(p) for p in self.peers.connected()), return_exceptions=True
        )
        return sorted({n for names in got if isinstance(names, list) for n in names})
