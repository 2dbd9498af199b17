"""A store that writes one process's owned objects under its lease, and keeps the lease.

Cilium's agents write their node entry, endpoints and identity keys to the
kvstore with a session lease, so a node that dies takes its entries with it
once the lease runs out. ``LeasedStore`` wraps any Store: objects the
``owned`` predicate picks are written with the current lease and remembered;
``keep_lease`` renews it and, when it is lost (expired during an outage that
outlived it, or never granted), grants a new one and writes every remembered
object again, so the store converges back to what this process holds.
Everything else passes through untouched.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable

from axoneme.store.types import (
    Key,
    LeaseID,
    LeaseNotFoundError,
    Listing,
    Resource,
    Store,
    StoreError,
    WatchEvent,
)

log = logging.getLogger(__name__)

Owned = Callable[[Resource], bool]


def _bare(obj: Resource) -> Resource:
    """The object without its revision: a rewrite must not be a compare-and-swap."""
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


class LeasedStore:
    def __init__(self, inner: Store, owned: Owned) -> None:
        self.inner = inner
        self._owned = owned
        self.lease: LeaseID | None = None
        self._remembered: dict[Key, Resource] = {}
        self.lost = asyncio.Event()  # set when a write found the lease gone
        self.renewed_at: float | None = None  # loop time of the last grant or keep-alive

    def report(self, ttl: int) -> dict[str, object]:
        """The lease as ``axoneme status`` shows it."""
        ago = None
        if self.renewed_at is not None:
            ago = round(asyncio.get_running_loop().time() - self.renewed_at, 1)
        return {
            "lease": f"{self.lease:x}" if self.lease is not None else None,
            "ttlSeconds": ttl,
            "ownedEntries": len(self._remembered),
            "renewedSecondsAgo": ago,
        }

    def owned_keys(self) -> list[Key]:
        return sorted(self._remembered, key=str)

    def remember(self, obj: Resource) -> None:
        """Take ownership of an object written by an earlier run of this process."""
        self._remembered[Key.of(obj)] = _bare(obj)

    async def create(self, obj: Resource, *, lease: LeaseID | None = None) -> Resource:
        if lease is not None or not self._owned(obj):
            return await self.inner.create(obj, lease=lease)
        try:
            stored = await self.inner.create(obj, lease=self.lease)
        except LeaseNotFoundError:
            self._lose()
            stored = await self.inner.create(obj)
        self._remembered[Key.of(obj)] = _bare(obj)
        return stored

    async def put(
        self, obj: Resource, expect_revision: int | None = None, *, lease: LeaseID | None = None
    ) -> Resource:
        if lease is not None or not self._owned(obj):
            return await self.inner.put(obj, expect_revision, lease=lease)
        try:
            stored = await self.inner.put(obj, expect_revision, lease=self.lease)
        except LeaseNotFoundError:
            # Written without a lease for now; keep_lease rewrites it under the next one.
            self._lose()
            stored = await self.inner.put(obj, expect_revision)
        self._remembered[Key.of(obj)] = _bare(obj)
        return stored

    def _lose(self) -> None:
        self.lease = None
        self.lost.set()

    async def delete(self, key: Key) -> int | None:
        self._remembered.pop(key, None)
        return await self.inner.delete(key)

    async def rewrite_owned(self) -> int:
        """Write every remembered object again under the current lease."""
        for key in self.owned_keys():
            obj = self._remembered.get(key)
            if obj is not None:
                await self.inner.put(obj, lease=self.lease)
        return len(self._remembered)

    # --- pass-through ---

    async def get(self, key: Key) -> Resource | None:
        return await self.inner.get(key)

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        return await self.inner.list(kind, namespace)

    def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(kind, since)

    async def list_all(self) -> Listing:
        return await self.inner.list_all()

    def watch_all(self, since: int) -> AsyncIterator[WatchEvent]:
        return self.inner.watch_all(since)

    async def health(self) -> str:
        return await self.inner.health()

    async def grant(self, ttl: int) -> LeaseID:
        return await self.inner.grant(ttl)

    async def keepalive(self, lease: LeaseID) -> int:
        return await self.inner.keepalive(lease)

    async def revoke(self, lease: LeaseID) -> None:
        await self.inner.revoke(lease)

    async def close(self) -> None:
        await self.inner.close()


async def keep_lease(
    store: LeasedStore,
    ttl: int,
    *,
    on_granted: Callable[[], object] | None = None,
    retry: float = 1.0,
) -> None:
    """Hold a lease for ``store`` until cancelled: renew every ttl/3, re-grant when lost.

    While the store is unreachable nothing is deleted or changed here: the
    entries stay as they were and the lease is renewed (or replaced, with
    every owned object rewritten) as soon as the store answers again.
    """
    period = max(ttl / 3, 0.2)
    down = False
    rewrite = False  # a new lease whose owned objects are not all written yet
    while True:
        try:
            if store.lease is None:
                store.lost.clear()
                store.lease = await store.grant(ttl)
                rewrite = True
            else:
                await store.keepalive(store.lease)
            store.renewed_at = asyncio.get_running_loop().time()
            if rewrite:
                count = await store.rewrite_owned()
                rewrite = False
                log.info("lease %x (ttl %ds): %d owned entries written", store.lease, ttl, count)
                if on_granted is not None:
                    result = on_granted()
                    if asyncio.iscoroutine(result):
                        await result
            if down:
                log.info("store reachable again; lease %x held", store.lease)
                down = False
            wait = period
        except LeaseNotFoundError:
            log.warning("lease %x lost; granting a new one", store.lease or 0)
            store.lease = None
            continue
        except StoreError as exc:
            if not down:
                log.warning("cannot renew the lease (%s); keeping the last known state", exc)
                down = True
            wait = retry
        lost = asyncio.ensure_future(store.lost.wait())
        try:
            await asyncio.wait({lost}, timeout=wait)
        finally:
            lost.cancel()
        if store.lost.is_set():
            store.lease = None
