"""The etcd backend against a real etcd on loopback: CRUD, conflicts, watch, outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from axoneme.store.etcd import EtcdStore
from axoneme.store.types import ConflictError, Key, StoreError, WatchEvent
from integration.conftest import free_port


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "d"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def test_crud_and_conflicts(etcd: str) -> None:
    async def run() -> None:
        s = EtcdStore(etcd)
        try:
            assert (await s.health()).startswith("Ok etcd")
            a = await s.create(pod("a"))
            rev = int(a["metadata"]["resourceVersion"])
            with pytest.raises(ConflictError):
                await s.create(pod("a"))
            b = await s.put(a, expect_revision=rev)
            assert int(b["metadata"]["resourceVersion"]) > rev
            with pytest.raises(ConflictError):
                await s.put(a, expect_revision=rev)
            got = await s.get(Key("Pod", "d", "a"))
            assert (
                got is not None
                and got["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"]
            )
            await s.create(pod("b"))
            listing = await s.list("Pod", "d")
            assert [p["metadata"]["name"] for p in listing.items] == ["a", "b"]
            assert (await s.list("Pod", "other")).items == []
            assert await s.delete(Key("Pod", "d", "a"))
            assert not await s.delete(Key("Pod", "d", "a"))
        finally:
            await s.close()

    asyncio.run(run())


def test_watch_from_a_revision(etcd: str) -> None:
    async def run() -> list[tuple[str, str]]:
        s = EtcdStore(etcd)
        try:
            await s.create(pod("old"))
            since = (await s.list("Pod")).revision
            seen: list[WatchEvent] = []

            async def consume() -> None:
                async for event in s.watch("Pod", since):
                    seen.append(event)
                    if len(seen) == 3:
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            p = await s.create(pod("new"))
            await s.put(p)
            await s.delete(Key("Pod", "d", "new"))
            await asyncio.wait_for(task, 5)
            return [(e.type, e.object["metadata"]["name"]) for e in seen]
        finally:
            await s.close()

    assert asyncio.run(run()) == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


def test_unreachable_store_is_a_store_error() -> None:
    async def run() -> None:
        s = EtcdStore(f"http://127.0.0.1:{free_port()}", timeout=1)
        try:
            with pytest.raises(StoreError, match="unreachable"):
                await s.get(Key("Pod", "d", "a"))
        finally:
            await s.close()

    asyncio.run(run())
