"""Leader election on a store lease: one operator works, the others stand by.

The leader is whoever created the election object (a coordination.k8s.io
``Lease``-shaped resource) under its own store lease. The object lives
exactly as long as that lease, so when the leader dies (even ``kill -9``)
it disappears at most ``ttl`` seconds after the leader's last keep-alive, and
a standby, trying every ``retry`` seconds, creates it: takeover takes at
most ``ttl + retry`` plus one store round trip.

A leader that cannot renew stops working once ``ttl`` has passed since the
last renewal it *sent*: the store counts from when it *received* it, which
is later, so the old leader has stopped before anyone else can be elected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from axoneme.store.types import (
    ConflictError,
    Key,
    LeaseID,
    LeaseNotFoundError,
    Resource,
    Store,
    StoreError,
)

log = logging.getLogger(__name__)

ELECTION_NAMESPACE = "kube-system"
Clock = Callable[[], float]


@dataclass
class Term:
    """One term of leadership, as the leader sees it (pure timing)."""

    ttl: float
    renewed_at: float  # when the last successful renewal was sent

    def renewed(self, sent_at: float) -> None:
        self.renewed_at = max(self.renewed_at, sent_at)

    def over(self, now: float) -> bool:
        """True once the store may have expired the lease (others may lead now)."""
        return now - self.renewed_at >= self.ttl


def election_key(name: str) -> Key:
    return Key("Lease", ELECTION_NAMESPACE, name)


def election_object(name: str, holder: str, ttl: int) -> Resource:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": ELECTION_NAMESPACE},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": ttl,
            "acquireTime": datetime.now(UTC).isoformat(timespec="microseconds"),
        },
    }


async def leader_of(store: Store, name: str) -> str | None:
    obj = await store.get(election_key(name))
    return str(obj["spec"]["holderIdentity"]) if obj else None


Work = Callable[[], Awaitable[None]]


class Elector:
    def __init__(
        self,
        store: Store,
        name: str,
        identity: str,
        ttl: int,
        *,
        retry: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if ttl < 2:
            raise ValueError(f"election ttl: {ttl} must be at least 2 seconds")
        self.store, self.name, self.identity, self.ttl = store, name, identity, ttl
        self.retry = retry
        self.clock = clock
        self.lease: LeaseID | None = None
        self.leading = asyncio.Event()
        self.terms = 0

    async def _try_acquire(self) -> float | None:
        """Create the election object under a fresh lease; when it was renewed, if we won."""
        sent = self.clock()
        if self.lease is not None:
            try:
                # Renewed first, so a won term starts with the whole TTL ahead of it.
                await self.store.keepalive(self.lease)
            except LeaseNotFoundError:
                self.lease = None
        if self.lease is None:
            sent = self.clock()
            self.lease = await self.store.grant(self.ttl)
        try:
            await self.store.create(
                election_object(self.name, self.identity, self.ttl), lease=self.lease
            )
        except ConflictError:
            return None
        except LeaseNotFoundError:
            self.lease = None
            return None
        return sent

    async def run(self, work: Work) -> None:
        """Campaign forever; run ``work`` while leading, cancel it when the term ends."""
        while True:
            try:
                won = await self._try_acquire()
            except StoreError as exc:
                log.debug("election: %s", exc)
                won = None
            if won is None:
                await asyncio.sleep(self.retry)
                continue
            self.terms += 1
            log.info("%s is the leader (term %d)", self.identity, self.terms)
            self.leading.set()
            try:
                await self._lead(work, won)
            except Exception:
                log.exception("operator work failed; resigning")
                await self.resign()
                await asyncio.sleep(self.retry)
            finally:
                self.leading.clear()
            log.warning("%s is no longer the leader", self.identity)

    async def _lead(self, work: Work, renewed_at: float) -> None:
        term = Term(self.ttl, renewed_at)
        task = asyncio.ensure_future(work())
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.ttl / 3)
                if task.done():
                    break
                sent = self.clock()
                if self.lease is None:
                    return
                try:
                    await asyncio.wait_for(self.store.keepalive(self.lease), self.ttl / 3)
                    term.renewed(sent)
                except LeaseNotFoundError:
                    self.lease = None
                    return
                except (StoreError, TimeoutError) as exc:
                    log.warning("election: cannot renew (%s)", exc)
                if term.over(self.clock()):
                    self.lease = None  # a new term needs a new lease
                    return
            task.result()  # the work ended on its own: let its error out
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def resign(self) -> None:
        """Give up leadership now (graceful stop): the standby need not wait for the TTL."""
        if self.lease is not None:
            lease, self.lease = self.lease, None
            try:
                await self.store.revoke(lease)
            except StoreError as exc:
                log.warning("election: cannot resign (%s)", exc)
