"""The relay: merge order, and two real node observers (gRPC on loopback) found
through the store, one of which goes away and comes back."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from observer_helpers import directory, records
from prometheus_client import CollectorRegistry

from axoneme.observer.convert import timestamp
from axoneme.observer.core import Observer, parse_request
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.server import NodeBackend, start_server
from axoneme.relay.backend import RelayBackend
from axoneme.relay.merge import SortingBuffer, merge_history, response_time_ns
from axoneme.relay.peers import Peers
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key


def at(ns: int, node: str = "n") -> pb.GetFlowsResponse:
    return pb.GetFlowsResponse(flow=pb.Flow(node_name=node), node_name=node, time=timestamp(ns))


def test_merge_history_orders_by_time() -> None:
    merged = merge_history([[at(1), at(4), at(9)], [at(2), at(3)], [], [at(5)]])
    assert [response_time_ns(r) for r in merged] == [1, 2, 3, 4, 5, 9]


def test_sorting_buffer_releases_behind_the_window() -> None:
    buf = SortingBuffer(window_ns=10, max_items=100)
    assert buf.push(at(100)) == []
    assert buf.push(at(95)) == []
    out = buf.push(at(111))  # 111 - 10 = 101: 95 and 100 are due
    assert [response_time_ns(r) for r in out] == [95, 100]
    assert buf.push(at(105)) == []
    assert [response_time_ns(r) for r in buf.flush()] == [105, 111]
    small = SortingBuffer(window_ns=10**12, max_items=2)
    small.push(at(3))
    small.push(at(1))
    assert [response_time_ns(r) for r in small.push(at(2))] == [1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_object(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def node_observer(name: str, ts: list[int]) -> Observer:
    obs = Observer(name, capacity=64)
    obs.ring.mono_to_wall_ns = 0
    d = directory()
    obs.set_directory_source(lambda: d, lambda: 1)
    obs.ingest(records(*[dict(ts_ns=t, sport=t) for t in ts]))
    return obs


async def wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_relay_merges_nodes_and_survives_one_going_away() -> None:
    async def scenario() -> None:
        port = free_port()
        store = MemoryStore()
        await store.create(node_object("n1", "127.0.0.2"))
        await store.create(node_object("n2", "127.0.0.3"))
        o1 = node_observer("n1", [10, 30, 50])
        o2 = node_observer("n2", [20, 40])
        s1 = await start_server(NodeBackend(o1), None, f"127.0.0.2:{port}")
        s2 = await start_server(NodeBackend(o2), None, f"127.0.0.3:{port}")
        peers = Peers(store, port, interval=0.1)
        relay = RelayBackend(peers, CollectorRegistry(), window_s=0.05)
        running = asyncio.ensure_future(peers.run())
        try:

            async def both() -> bool:
                return len(peers.connected()) == 2

            await wait_until(both)
            req = pb.GetFlowsRequest(number=10)
            got = [r async for r in relay.get_flows(req, parse_request(req))]
            assert [(r.node_name, r.flow.l4.TCP.source_port) for r in got] == [
                ("n1", 10), ("n2", 20), ("n1", 30), ("n2", 40), ("n1", 50),
            ]  # fmt: skip
            status = await relay.server_status()
            assert (status.num_flows, status.max_flows, status.num_connected_nodes.value) == (
                5, 128, 2,
            )  # fmt: skip

            # A follower sees both nodes live, then n2 goes away.
            follow = pb.GetFlowsRequest(follow=True)
            stream = relay.get_flows(follow, parse_request(follow))
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.3)
            o1.ingest(records(dict(ts_ns=60, sport=60)))
            o2.ingest(records(dict(ts_ns=70, sport=70)))
            live = [await first, await anext(stream)]
            assert [r.flow.l4.TCP.source_port for r in live] == [60, 70]

            await s2.stop(0)

            async def n2_down() -> bool:
                return (await relay.server_status()).unavailable_nodes == ["n2"]

            await wait_until(n2_down)
            event = await asyncio.wait_for(anext(stream), 5)
            assert event.node_status.state_change == pb.NODE_UNAVAILABLE
            assert list(event.node_status.node_names) == ["n2"]
            got = [r async for r in relay.get_flows(req, parse_request(req))]
            assert got[0].node_status.state_change == pb.NODE_UNAVAILABLE
            assert {r.node_name for r in got[1:]} == {"n1"}
            nodes = {n.name: n.state for n in await relay.nodes()}
            assert nodes == {"n1": pb.NODE_CONNECTED, "n2": pb.NODE_UNAVAILABLE}

            # n2 comes back: the follower is told and gets its new flows.
            s2 = await start_server(NodeBackend(o2), None, f"127.0.0.3:{port}")
            back = await asyncio.wait_for(anext(stream), 10)
            assert back.node_status.state_change == pb.NODE_CONNECTED
            await asyncio.sleep(0.3)
            o2.ingest(records(dict(ts_ns=80, sport=80)))
            again = await asyncio.wait_for(anext(stream), 5)
            assert (again.node_name, again.flow.l4.TCP.source_port) == ("n2", 80)
            await stream.aclose()  # type: ignore[attr-defined]

            # A node deleted from the store is forgotten.
            await store.delete(Key("Node", "", "n2"))

            async def forgotten() -> bool:
                return "n2" not in {n.name for n in await relay.nodes()}

            await wait_until(forgotten)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await s1.stop(0)
            await s2.stop(0)

    asyncio.run(scenario())
