"""The node entry follows what components publish in it (the health address), under the lease."""

from __future__ import annotations

import asyncio

from axoneme.agent.nodelease import NodeEntry, node_entry, node_owned, publish_changes
from axoneme.store.leased import LeasedStore, keep_lease
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key, Resource

KEY = Key("ClusterNode", "", "node1")


def test_set_health_signals_only_a_change() -> None:
    wanted = NodeEntry()
    wanted.set_health("")
    assert not wanted.changed.is_set()
    wanted.set_health("10.42.1.7")
    assert wanted.changed.is_set() and wanted.health_ipv4 == "10.42.1.7"


def test_the_health_address_is_published_and_withdrawn() -> None:
    async def run() -> None:
        inner = MemoryStore()
        store = LeasedStore(inner, node_owned)
        wanted = NodeEntry()

        def entry() -> Resource:
            return node_entry("node1", "172.30.0.11", ["10.42.1.0/24"], 15, wanted.health_ipv4)

        store.remember(entry())

        async def health() -> object:
            stored = await inner.get(KEY)
            return None if stored is None else stored["spec"].get("health")

        async def until(value: object) -> None:
            for _ in range(100):
                if await inner.get(KEY) is not None and await health() == value:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"spec.health never became {value!r}: {await health()!r}")

        async with asyncio.TaskGroup() as tg:
            keeper = tg.create_task(keep_lease(store, 15))
            publisher = tg.create_task(publish_changes(store, wanted, entry))
            await until(None)
            wanted.set_health("10.42.1.7")
            await until({"ipv4": "10.42.1.7"})
            # A lease lost now rewrites the entry as last published, not as first written.
            assert store.lease is not None
            await inner.revoke(store.lease)
            store.lost.set()
            await until({"ipv4": "10.42.1.7"})
            wanted.set_health("")  # health checking stopped
            await until(None)
            keeper.cancel()
            publisher.cancel()

    asyncio.run(run())
