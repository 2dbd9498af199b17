"""The relay's peers: every node's observer, found through the store's Node resources.

A peer is the node's InternalIP at the observer port. A health loop asks each
peer for its ServerStatus every ``interval`` seconds: an answer marks it
CONNECTED, a failure UNAVAILABLE; a Node deleted from the store is GONE (and
forgotten). Channels reconnect by themselves (gRPC), so a node that comes back
is CONNECTED again at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import parse_node
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.proto import observer_pb2_grpc as pbg
from axoneme.store.informer import run_informer
from axoneme.store.types import Resource, Store, WatchEvent

__all__ = ["Peer", "Peers"]

log = logging.getLogger(__name__)


@dataclass
class Peer:
    name: str
    address: str  # HOST:PORT
    channel: grpc.aio.Channel
    stub: pbg.ObserverStub
    state: int = pb.NODE_UNAVAILABLE
    status: pb.ServerStatusResponse | None = None
    info: pb.Node | None = None
    error: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Peers:
    def __init__(
        self,
        store: Store,
        port: int,
        interval: float = 1.0,
        on_change: Callable[[Peer], None] | None = None,
    ) -> None:
        self.store = store
        self.port = port
        self.interval = interval
        self.peers: dict[str, Peer] = {}
        self.on_change = on_change
        self.changed = asyncio.Event()  # set whenever a peer's state changes
        self._closing: set[asyncio.Future[None]] = set()

    # ---- membership (the Node informer) ------------------------------------------

    def _address(self, obj: Resource) -> tuple[str, str] | None:
        try:
            node = parse_node(obj)
        except ValidationError as exc:
            log.warning("ignoring a Node: %s", exc)
            return None
        return (node.name, f"{node.internal_ip}:{self.port}") if node.internal_ip else None

    def _upsert(self, name: str, address: str) -> None:
        old = self.peers.get(name)
        if old is not None and old.address == address:
            return
        if old is not None:
            self._close(old)
        channel = grpc.aio.insecure_channel(address)
        stub = pbg.ObserverStub(channel)  # type: ignore[no-untyped-call]
        self.peers[name] = Peer(name, address, channel, stub)
        self._notify(self.peers[name])

    def _close(self, peer: Peer) -> None:
        peer.state = pb.NODE_GONE
        self._notify(peer)
        closing = asyncio.ensure_future(peer.channel.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _notify(self, peer: Peer) -> None:
        peer.changed.set()
        peer.changed = asyncio.Event()
        self.changed.set()
        self.changed = asyncio.Event()
        if self.on_change:
            self.on_change(peer)

    async def on_sync(self, items: list[Resource]) -> None:
        seen = {}
        for obj in items:
            found = self._address(obj)
            if found:
                seen[found[0]] = found[1]
        for name in set(self.peers) - set(seen):
            self._close(self.peers.pop(name))
        for name, address in seen.items():
            self._upsert(name, address)

    async def on_event(self, event: WatchEvent) -> None:
        found = self._address(event.object)
        if found is None:
            return
        name, address = found
        if event.type == "DELETED":
            peer = self.peers.pop(name, None)
            if peer:
                self._close(peer)
        else:
            self._upsert(name, address)

    # ---- health --------------------------------------------------------------------

    async def check(self, peer: Peer) -> None:
        timeout = max(self.interval, 0.5)
        try:
            status = await peer.stub.ServerStatus(pb.ServerStatusRequest(), timeout=timeout)
            nodes = await peer.stub.GetNodes(pb.GetNodesRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            peer.status, peer.error = None, exc.details() or exc.code().name
            state = pb.NODE_UNAVAILABLE
        else:
            peer.status, peer.error = status, ""
            peer.info = nodes.nodes[0] if nodes.nodes else None
            state = pb.NODE_CONNECTED
        if state != peer.state:
            log.info("peer %s (%s): %s", peer.name, peer.address, pb.NodeState.Name(state))
            peer.state = state
            self._notify(peer)

    async def run(self) -> None:
        informer = asyncio.ensure_future(
            run_informer(self.store, "Node", self.on_sync, self.on_event)
        )
        try:
            while True:
                await asyncio.gather(*(self.check(p) for p in list(self.peers.values())))
                await asyncio.sleep(self.interval)
        finally:
            informer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await informer
            for peer in self.peers.values():
                await peer.channel.close()

    def connected(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.state == pb.NODE_CONNECTED]
