"""etcd leases through the v3 gateway, against a real etcd: expiry, keep-alive, revoke."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from axoneme.store.etcd import EtcdStore
from axoneme.store.types import Key, LeaseNotFoundError, WatchEvent


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_lease_expiry_deletes_with_a_watch_event(etcd: str) -> None:
    async def run() -> None:
        s = EtcdStore(etcd)
        try:
            lease = await s.grant(2)  # etcd's minimum TTL with default timing
            await s.create(ns("leased"), lease=lease)
            await s.put(ns("kept"))
            since = (await s.list("Namespace")).revision
            started = time.monotonic()
            # Kept alive for 3 s: longer than the TTL, so renewal works.
            while time.monotonic() - started < 3:
                assert await s.keepalive(lease) >= 1
                await asyncio.sleep(0.5)
            assert await s.get(Key("Namespace", "", "leased")) is not None
            stream = s.watch("Namespace", since)
            event: WatchEvent = await asyncio.wait_for(anext(stream), 10)
            assert (event.type, event.object["metadata"]["name"]) == ("DELETED", "leased")
            await stream.aclose()  # type: ignore[attr-defined]
            assert await s.get(Key("Namespace", "", "kept")) is not None
            with pytest.raises(LeaseNotFoundError):
                await s.keepalive(lease)
            with pytest.raises(LeaseNotFoundError):
                await s.put(ns("late"), lease=lease)
        finally:
            await s.close()

    asyncio.run(run())


def test_revoke_and_detach(etcd: str) -> None:
    async def run() -> None:
        s = EtcdStore(etcd)
        try:
            lease = await s.grant(30)
            await s.put(ns("a"), lease=lease)
            await s.put(ns("b"), lease=lease)
            await s.put(ns("b"))  # a put without lease detaches b
            await s.revoke(lease)
            assert await s.get(Key("Namespace", "", "a")) is None
            assert await s.get(Key("Namespace", "", "b")) is not None
            await s.revoke(lease)  # gone already: no error
        finally:
            await s.close()

    asyncio.run(run())
