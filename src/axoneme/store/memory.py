"""Embedded store: in-process, no server, optionally persisted to a JSON file.

Used by a single-node agent and by control-plane tests. It has the same
revision and watch semantics as the etcd backend.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from axoneme.kit.files import atomic_write_text
from axoneme.store.types import ConflictError, Key, Listing, Resource, WatchEvent

_PREFIX = "/axoneme/v1"


class MemoryStore:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._objects: dict[Key, Resource] = {}
        self._revision = 0
        self._log: list[WatchEvent] = []
        self._changed = asyncio.Condition()
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            self._revision = int(data["revision"])
            for obj in data["objects"]:
                self._objects[Key.of(obj)] = obj

    async def get(self, key: Key) -> Resource | None:
        obj = self._objects.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        items = [
            copy.deepcopy(o)
            for k, o in sorted(self._objects.items(), key=lambda kv: kv[0].path(_PREFIX))
            if k.kind == kind and (not namespace or k.namespace == namespace)
        ]
        return Listing(items, self._revision)

    async def create(self, obj: Resource) -> Resource:
        if Key.of(obj) in self._objects:
            raise ConflictError(f"{Key.of(obj)} already exists")
        return await self._write(obj, "ADDED")

    async def put(self, obj: Resource, expect_revision: int | None = None) -> Resource:
        key = Key.of(obj)
        current = self._objects.get(key)
        if expect_revision is not None:
            have = int(current["metadata"]["resourceVersion"]) if current else 0
            if have != expect_revision:
                raise ConflictError(f"{key} is at revision {have}, not {expect_revision}")
        return await self._write(obj, "MODIFIED" if current else "ADDED")

    async def delete(self, key: Key) -> int | None:
        obj = self._objects.pop(key, None)
        if obj is None:
            return None
        self._revision += 1
        await self._publish(WatchEvent("DELETED", copy.deepcopy(obj), self._revision))
        return self._revision

    async def _write(self, obj: Resource, event: str) -> Resource:
        self._revision += 1
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._revision)
        self._objects[Key.of(stored)] = stored
        await self._publish(
            WatchEvent(
                "ADDED" if event == "ADDED" else "MODIFIED", copy.deepcopy(stored), self._revision
            )
        )
        return copy.deepcopy(stored)

    async def _publish(self, event: WatchEvent) -> None:
        self._log.append(event)
        self._persist()
        async with self._changed:
            self._changed.notify_all()

    def _persist(self) -> None:
        if self._path is None:
            return
        data = {"revision": self._revision, "objects": list(self._objects.values())}
        atomic_write_text(self._path, json.dumps(data))

    async def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        seen = since
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._newer_than, seen))
            # The log is append-only and ordered by revision; a consumer that
            # yields here may see events appended meanwhile, which is fine.
            for event in self._log:
                if event.revision <= seen:
                    continue
                seen = event.revision
                if event.object["kind"] == kind:
                    yield event

    async def list_all(self) -> Listing:
        items = [
            copy.deepcopy(o)
            for _, o in sorted(self._objects.items(), key=lambda kv: kv[0].path(_PREFIX))
        ]
        return Listing(items, self._revision)

    async def watch_all(self, since: int) -> AsyncIterator[WatchEvent]:
        seen = since
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._newer_than, seen))
            for event in self._log:
                if event.revision > seen:
                    seen = event.revision
                    yield event

    def _newer_than(self, revision: int) -> bool:
        return self._revision > revision

    async def health(self) -> str:
        return f"Ok embedded (revision {self._revision})"

    async def close(self) -> None:
        self._persist()
