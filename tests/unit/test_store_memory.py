"""The embedded store: CRUD, revisions, conflicts, watch, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from axoneme.store.memory import MemoryStore
from axoneme.store.types import ConflictError, Key, WatchEvent


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "d"}}


def test_crud_revisions_and_conflicts(tmp_path: Path) -> None:
    async def run() -> None:
        s = MemoryStore(tmp_path / "s.json")
        a = await s.create(ns("a"))
        assert a["metadata"]["resourceVersion"] == "1"
        with pytest.raises(ConflictError):
            await s.create(ns("a"))
        b = await s.put(a, expect_revision=1)
        assert b["metadata"]["resourceVersion"] == "2"
        with pytest.raises(ConflictError):
            await s.put(a, expect_revision=1)
        assert [o["metadata"]["name"] for o in (await s.list("Namespace")).items] == ["a"]
        assert await s.delete(Key("Namespace", "", "a"))
        assert not await s.delete(Key("Namespace", "", "a"))
        await s.create(ns("kept"))
        await s.close()
        again = MemoryStore(tmp_path / "s.json")
        assert (await again.get(Key("Namespace", "", "kept"))) is not None
        assert (await again.list("Namespace")).revision == 4

    asyncio.run(run())


def test_watch_sees_only_its_kind_in_order() -> None:
    async def run() -> list[tuple[str, str]]:
        s = MemoryStore()
        await s.create(pod("before"))
        since = (await s.list("Pod")).revision
        seen: list[WatchEvent] = []

        async def consume() -> None:
            async for event in s.watch("Pod", since):
                seen.append(event)
                if len(seen) == 3:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        p = await s.create(pod("p1"))
        await s.create(ns("other-kind"))
        await s.put(p)
        await s.delete(Key("Pod", "d", "p1"))
        await asyncio.wait_for(task, 2)
        return [(e.type, e.object["metadata"]["name"]) for e in seen]

    assert asyncio.run(run()) == [("ADDED", "p1"), ("MODIFIED", "p1"), ("DELETED", "p1")]
