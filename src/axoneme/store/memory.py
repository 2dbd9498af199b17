"""Embedded store: in-process, no server, optionally persisted to a JSON file.

Used by a single-node agent and by control-plane tests. It has the same
revision and watch semantics as the etcd backend, and the same leases: a
lease expires ``ttl`` seconds after its last keep-alive (on ``clock``), and
its objects are deleted then, with DELETED events. The store lives in one
process, so its leases end with it: leased objects are not restored from the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from axoneme.kit.files import atomic_write_text
from axoneme.store.types import (
    ConflictError,
    Key,
    LeaseID,
    LeaseNotFoundError,
    Listing,
    Resource,
    WatchEvent,
)

_PREFIX = "/axoneme/v1"


@dataclass
class _Lease:
    ttl: int
    deadline: float


class MemoryStore:
    def __init__(
        self, path: Path | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = path
        self._clock = clock
        self._objects: dict[Key, Resource] = {}
        self._revision = 0
        self._log: list[WatchEvent] = []
        self._changed = asyncio.Condition()
        self._leases: dict[LeaseID, _Lease] = {}
        self._leased: dict[Key, LeaseID] = {}
        self._lease_ids = itertools.count(0x1000)
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            self._revision = int(data["revision"])
            leased = set(data.get("leased", []))
            for obj in data["objects"]:
                if Key.of(obj).path(_PREFIX) not in leased:
                    self._objects[Key.of(obj)] = obj

    async def get(self, key: Key) -> Resource | None:
        await self._expire()
        obj = self._objects.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        await self._expire()
        items = [
            copy.deepcopy(o)
            for k, o in sorted(self._objects.items(), key=lambda kv: kv[0].path(_PREFIX))
            if k.kind == kind and (not namespace or k.namespace == namespace)
        ]
        return Listing(items, self._revision)

    async def create(self, obj: Resource, *, lease: LeaseID | None = None) -> Resource:
        await self._expire()
        self._check_lease(lease)
        if Key.of(obj) in self._objects:
            raise ConflictError(f"{Key.of(obj)} already exists")
        return await self._write(obj, "ADDED", lease)

    async def put(
        self, obj: Resource, expect_revision: int | None = None, *, lease: LeaseID | None = None
    ) -> Resource:
        await self._expire()
        self._check_lease(lease)
        key = Key.of(obj)
        current = self._objects.get(key)
        if expect_revision is not None:
            have = int(current["metadata"]["resourceVersion"]) if current else 0
            if have != expect_revision:
                raise ConflictError(f"{key} is at revision {have}, not {expect_revision}")
        return await self._write(obj, "MODIFIED" if current else "ADDED", lease)

    async def delete(self, key: Key) -> int | None:
        await self._expire()
        return await self._delete(key)

    async def _delete(self, key: Key) -> int | None:
        obj = self._objects.pop(key, None)
        self._leased.pop(key, None)
        if obj is None:
            return None
        self._revision += 1
        await self._publish(WatchEvent("DELETED", copy.deepcopy(obj), self._revision))
        return self._revision

    async def _write(self, obj: Resource, event: str, lease: LeaseID | None) -> Resource:
        self._revision += 1
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._revision)
        self._objects[Key.of(stored)] = stored
        # As in etcd, a put sets the lease anew: no lease means none.
        if lease is None:
            self._leased.pop(Key.of(stored), None)
        else:
            self._leased[Key.of(stored)] = lease
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
        data = {
            "revision": self._revision,
            "objects": list(self._objects.values()),
            "leased": sorted(k.path(_PREFIX) for k in self._leased),
        }
        atomic_write_text(self._path, json.dumps(data))

    # --- leases ---

    def _check_lease(self, lease: LeaseID | None) -> None:
        if lease is not None and lease not in self._leases:
            raise LeaseNotFoundError(f"lease {lease:x} expired or was revoked")

    async def grant(self, ttl: int) -> LeaseID:
        if ttl < 1:
            raise ValueError(f"lease ttl: {ttl} must be at least 1 second")
        await self._expire()
        lease = next(self._lease_ids)
        self._leases[lease] = _Lease(ttl, self._clock() + ttl)
        return lease

    async def keepalive(self, lease: LeaseID) -> int:
        await self._expire()
        self._check_lease(lease)
        entry = self._leases[lease]
        entry.deadline = self._clock() + entry.ttl
        return entry.ttl

    async def revoke(self, lease: LeaseID) -> None:
        await self._expire()
        await self._end_lease(lease)

    async def _end_lease(self, lease: LeaseID) -> None:
        if self._leases.pop(lease, None) is None:
            return
        for key in sorted(
            (k for k, owner in self._leased.items() if owner == lease),
            key=lambda k: k.path(_PREFIX),
        ):
            await self._delete(key)

    async def _expire(self) -> None:
        """End every lease past its deadline (lazily, on the next operation or wake-up)."""
        now = self._clock()
        for lease in [n for n, e in self._leases.items() if e.deadline <= now]:
            await self._end_lease(lease)

    def _until_expiry(self) -> float | None:
        if not self._leases:
            return None
        return max(0.0, min(e.deadline for e in self._leases.values()) - self._clock()) + 0.01

    async def _wait_newer(self, seen: int) -> None:
        """Until the store passes revision ``seen``; expiring leases on the way."""
        while not self._newer_than(seen):
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(partial(self._newer_than, seen)),
                        timeout=self._until_expiry(),
                    )
            await self._expire()

    async def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        seen = since
        while True:
            await self._wait_newer(seen)
            # The log is append-only and ordered by revision; a consumer that
            # yields here may see events appended meanwhile, which is fine.
            for event in self._log:
                if event.revision <= seen:
                    continue
                seen = event.revision
                if event.object["kind"] == kind:
                    yield event

    async def list_all(self) -> Listing:
        await self._expire()
        items = [
            copy.deepcopy(o)
            for _, o in sorted(self._objects.items(), key=lambda kv: kv[0].path(_PREFIX))
        ]
        return Listing(items, self._revision)

    async def watch_all(self, since: int) -> AsyncIterator[WatchEvent]:
        seen = since
        while True:
            await self._wait_newer(seen)
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
