"""LeasedStore and keep_lease on the embedded store: owned writes carry the lease,
a lost lease is replaced and every owned object rewritten, an outage changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from axoneme.agent.nodelease import node_entry, node_owned, own_endpoint
from axoneme.store.leased import LeasedStore, keep_lease
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key, LeaseID, Resource, StoreError


def cep(name: str, ip: str) -> Resource:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumEndpoint",
        "metadata": {"name": name, "namespace": "d"},
        "status": {"networking": {"addressing": [{"ipv4": ip}], "node": "172.30.0.11"}},
    }


def pod(name: str) -> Resource:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "d"}}


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_owned_writes_carry_the_lease_others_do_not() -> None:
    async def run() -> None:
        inner = MemoryStore()
        store = LeasedStore(inner, node_owned)
        store.lease = await inner.grant(30)
        await store.put(cep("a", "10.42.1.5"))
        await store.put(pod("a"))
        await inner.revoke(store.lease)
        assert await inner.get(Key("CiliumEndpoint", "d", "a")) is None
        assert await inner.get(Key("Pod", "d", "a")) is not None

    asyncio.run(run())


def test_a_lost_lease_is_replaced_and_owned_objects_rewritten() -> None:
    async def run() -> None:
        inner = MemoryStore()
        store = LeasedStore(inner, node_owned)
        store.remember(node_entry("node1", "172.30.0.11", ["10.42.1.0/24"], 3))
        keeper = asyncio.ensure_future(keep_lease(store, 3))
        try:
            await eventually(lambda: inner.get(Key("ClusterNode", "", "node1")))
            await store.put(cep("a", "10.42.1.5"))
            first = store.lease
            assert first is not None
            await inner.revoke(first)  # as if it had expired during an outage
            assert await inner.get(Key("CiliumEndpoint", "d", "a")) is None

            async def back() -> bool:
                return (
                    store.lease not in (None, first)
                    and await inner.get(Key("CiliumEndpoint", "d", "a")) is not None
                    and await inner.get(Key("ClusterNode", "", "node1")) is not None
                )

            await eventually(back)
            await store.delete(Key("CiliumEndpoint", "d", "a"))
            assert store.owned_keys() == [Key("ClusterNode", "", "node1")]
        finally:
            keeper.cancel()

    asyncio.run(run())


class Flaky(MemoryStore):
    """An embedded store that can be made unreachable."""

    down = False

    async def keepalive(self, lease: LeaseID) -> int:
        if self.down:
            raise StoreError("unreachable")
        return await super().keepalive(lease)

    async def grant(self, ttl: int) -> LeaseID:
        if self.down:
            raise StoreError("unreachable")
        return await super().grant(ttl)


def test_an_outage_changes_nothing_and_the_lease_is_kept_after() -> None:
    async def run() -> None:
        inner = Flaky()
        store = LeasedStore(inner, node_owned)
        store.remember(cep("a", "10.42.1.5"))
        keeper = asyncio.ensure_future(keep_lease(store, 30, retry=0.05))
        try:
            await eventually(lambda: inner.get(Key("CiliumEndpoint", "d", "a")))
            lease = store.lease
            inner.down = True
            await asyncio.sleep(0.3)
            assert store.lease == lease
            assert await inner.get(Key("CiliumEndpoint", "d", "a")) is not None
            inner.down = False
            await asyncio.sleep(0.3)
            assert store.lease == lease
        finally:
            keeper.cancel()

    asyncio.run(run())


def test_own_endpoint_matches_pod_and_address() -> None:
    mine = {("d", "a"): "10.42.1.5"}
    assert own_endpoint(cep("a", "10.42.1.5"), mine)
    assert not own_endpoint(cep("a", "10.42.2.5"), mine)  # same name, another node's pod
    assert not own_endpoint(cep("b", "10.42.1.5"), mine)


def test_report_shows_the_lease_and_its_entries() -> None:
    async def run() -> None:
        inner = MemoryStore()
        store = LeasedStore(inner, node_owned)
        assert store.report(15)["lease"] is None
        store.remember(node_entry("node1", "172.30.0.11", ["10.42.1.0/24"], 15))
        keeper = asyncio.ensure_future(keep_lease(store, 15))
        try:
            await eventually(lambda: inner.get(Key("ClusterNode", "", "node1")))
            report = store.report(15)
            assert report["lease"] == f"{store.lease:x}"
            assert report["ownedEntries"] == 1 and report["ttlSeconds"] == 15
            assert isinstance(report["renewedSecondsAgo"], float)
        finally:
            keeper.cancel()

    asyncio.run(run())
