"""List-then-watch with resync: keeps a consumer's view of one kind current.

On any store error it waits (with backoff) and relists, handing the consumer
the full new listing, so the consumer converges after an outage instead of
trusting a stream that may have missed events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from axoneme.store.types import Listing, Resource, Store, StoreError, WatchEvent

log = logging.getLogger(__name__)

SyncHandler = Callable[[list[Resource]], Awaitable[None]]
EventHandler = Callable[[WatchEvent], Awaitable[None]]


async def run_informer(
    store: Store,
    kind: str,
    on_sync: SyncHandler,
    on_event: EventHandler,
    *,
    max_backoff: float = 5.0,
) -> None:
    backoff = 0.2
    while True:
        try:
            listing = await store.list(kind)
            await on_sync(listing.items)
            backoff = 0.2
            async for event in store.watch(kind, listing.revision):
                await on_event(event)
        except StoreError as exc:
            log.warning("%s informer: %s; resyncing in %.1fs", kind, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)


ListingHandler = Callable[[Listing], Awaitable[None]]


async def run_cluster_informer(
    store: Store,
    on_sync: ListingHandler,
    on_event: EventHandler,
    *,
    max_backoff: float = 5.0,
) -> None:
    """One consistent snapshot of every kind, then one ordered stream of all events.

    A consumer that must know "I have seen everything up to revision R" across
    several kinds (the agent, for ``policy wait``) uses this instead of one
    informer per kind, whose progress would not be comparable.
    """
    backoff = 0.2
    while True:
        try:
            listing = await store.list_all()
            await on_sync(listing)
            backoff = 0.2
            async for event in store.watch_all(listing.revision):
                await on_event(event)
        except StoreError as exc:
            log.warning("cluster informer: %s; resyncing in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
