"""Leases in the embedded store: expiry on a fake clock, keep-alive, revoke, put semantics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key, LeaseNotFoundError, WatchEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_leased_objects_expire_with_their_lease_and_only_them() -> None:
    async def run() -> None:
        clock = Clock()
        s = MemoryStore(clock=clock)
        lease = await s.grant(15)
        await s.create(ns("leased"), lease=lease)
        await s.put(ns("kept"))
        clock.now += 10
        assert await s.keepalive(lease) == 15  # renewed: now expires at +25
        clock.now += 14
        assert await s.get(Key("Namespace", "", "leased")) is not None
        clock.now += 2
        assert await s.get(Key("Namespace", "", "leased")) is None
        assert await s.get(Key("Namespace", "", "kept")) is not None
        with pytest.raises(LeaseNotFoundError):
            await s.keepalive(lease)
        with pytest.raises(LeaseNotFoundError):
            await s.put(ns("late"), lease=lease)
        assert await s.get(Key("Namespace", "", "late")) is None

    asyncio.run(run())


def test_put_without_lease_detaches_the_object_as_etcd_does() -> None:
    async def run() -> None:
        s = MemoryStore(clock=Clock())
        lease = await s.grant(5)
        await s.put(ns("a"), lease=lease)
        await s.put(ns("a"))
        await s.revoke(lease)
        assert await s.get(Key("Namespace", "", "a")) is not None
        await s.revoke(lease)  # revoking twice is a no-op

    asyncio.run(run())


def test_revoke_deletes_with_watch_events() -> None:
    async def run() -> None:
        s = MemoryStore(clock=Clock())
        lease = await s.grant(5)
        await s.put(ns("a"), lease=lease)
        await s.put(ns("b"), lease=lease)
        since = (await s.list("Namespace")).revision
        seen: list[WatchEvent] = []

        async def collect() -> None:
            async for event in s.watch("Namespace", since):
                seen.append(event)
                if len(seen) == 2:
                    return

        task = asyncio.ensure_future(collect())
        await asyncio.sleep(0)
        await s.revoke(lease)
        await asyncio.wait_for(task, 2)
        assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [
            ("DELETED", "a"),
            ("DELETED", "b"),
        ]

    asyncio.run(run())


def test_a_watcher_wakes_for_an_expiry_without_other_writes() -> None:
    """Expiry is lazy, but a waiting watcher must still see it (real clock, 1 s lease)."""

    async def run() -> None:
        s = MemoryStore()
        lease = await s.grant(1)
        await s.put(ns("a"), lease=lease)
        since = (await s.list("Namespace")).revision
        stream = s.watch("Namespace", since)
        event = await asyncio.wait_for(anext(stream), 3)
        assert (event.type, event.object["metadata"]["name"]) == ("DELETED", "a")

    asyncio.run(run())


def test_leased_objects_are_not_restored_from_the_file(tmp_path: Path) -> None:
    async def run() -> None:
        s = MemoryStore(tmp_path / "s.json", clock=Clock())
        lease = await s.grant(30)
        await s.put(ns("leased"), lease=lease)
        await s.put(ns("kept"))
        await s.close()
        again = MemoryStore(tmp_path / "s.json")
        names = [o["metadata"]["name"] for o in (await again.list("Namespace")).items]
        assert names == ["kept"]

    asyncio.run(run())


def test_grant_refuses_a_zero_ttl() -> None:
    with pytest.raises(ValueError, match="lease ttl"):
        asyncio.run(MemoryStore().grant(0))
