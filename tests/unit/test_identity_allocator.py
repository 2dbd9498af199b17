"""Cluster identity allocation through the store: races, refcounts, GC, exhaustion,
the watch-fed cache and node-local CIDR identities."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from axoneme.identity.allocator import (
    IDENTITY_KIND,
    IdentityAllocator,
    IdentityCache,
    IdentityExhaustedError,
    LocalIdentityAllocator,
    collect_garbage,
    identity_object,
    index_name,
    is_index,
    labels_from_map,
    labels_to_map,
    parse_index,
)
from axoneme.identity.reserved import HOST, LOCAL_IDENTITY_FLAG, WORLD, is_local
from axoneme.labels.derive import cidr_labels
from axoneme.labels.model import Label, LabelSet, format_labels
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key, Listing, Resource, WatchEvent

T = TypeVar("T")


class RacyStore:
    """A MemoryStore that yields to other tasks a random number of times before
    and after every operation, so concurrent allocators really interleave."""

    def __init__(self, seed: int = 0) -> None:
        self.inner = MemoryStore()
        self._rng = random.Random(seed)
        self.calls: dict[str, int] = {}

    async def _racy(self, name: str, op: Callable[[], Awaitable[T]]) -> T:
        self.calls[name] = self.calls.get(name, 0) + 1
        for _ in range(self._rng.randrange(4)):
            await asyncio.sleep(0)
        result = await op()
        for _ in range(self._rng.randrange(4)):
            await asyncio.sleep(0)
        return result

    async def get(self, key: Key) -> Resource | None:
        return await self._racy("get", lambda: self.inner.get(key))

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        return await self._racy("list", lambda: self.inner.list(kind, namespace))

    async def create(self, obj: Resource) -> Resource:
        return await self._racy("create", lambda: self.inner.create(obj))

    async def put(self, obj: Resource, expect_revision: int | None = None) -> Resource:
        return await self._racy("put", lambda: self.inner.put(obj, expect_revision))

    async def delete(self, key: Key) -> Any:
        return await self._racy("delete", lambda: self.inner.delete(key))

    def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(kind, since)

    async def health(self) -> str:
        return await self.inner.health()

    async def close(self) -> None:
        await self.inner.close()


def lbls(**kv: str) -> LabelSet:
    return frozenset(Label("k8s", k, v) for k, v in kv.items())


WEB = lbls(app="web")
DB = lbls(app="db")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def objects(store: Any) -> tuple[dict[int, LabelSet], list[Resource]]:
    """(identity objects by ID, labels keys) in the store."""
    items = (await store.list(IDENTITY_KIND)).items
    ids = {
        int(o["metadata"]["name"]): labels_from_map(o["security-labels"])
        for o in items
        if not is_index(o)
    }
    return ids, [o for o in items if is_index(o)]


def test_twenty_concurrent_allocations_from_three_nodes_get_one_id() -> None:
    async def run() -> None:
        for seed in range(5):
            store = RacyStore(seed)
            nodes = [IdentityAllocator(store, f"n{i}", rng=random.Random(seed)) for i in range(3)]
            got = await asyncio.gather(*(a.allocate(WEB) for a in nodes for _ in range(20)))
            assert len(set(got)) == 1
            (ident,) = set(got)
            assert 256 <= ident <= 65535
            ids, keys = await objects(store)
            # Losers removed the numbers they had claimed: one identity object.
            assert ids == {ident: WEB}
            assert len(keys) == 1
            entry = parse_index(keys[0])
            assert entry.identity == ident
            assert sorted(entry.references) == ["n0", "n1", "n2"]
            for a in nodes:
                assert a.refcounts() == {ident: 20}
                assert await a.lookup(ident) == WEB
            # The race really happened: some node lost the labels key and freed its number.
            assert store.calls.get("delete", 0) >= 1

    asyncio.run(run())


def test_different_label_sets_never_share_an_id() -> None:
    async def run() -> None:
        store = RacyStore(7)
        # A small range makes the nodes collide on numbers, not only on labels.
        nodes = [
            IdentityAllocator(store, f"n{i}", min_id=256, max_id=300, rng=random.Random(1))
            for i in range(3)
        ]
        sets = [lbls(app=f"a{i}") for i in range(30)]
        jobs = [(n, s) for s in sets for n in nodes]
        random.Random(3).shuffle(jobs)
        got = await asyncio.gather(*(n.allocate(s) for n, s in jobs))
        by_labels: dict[LabelSet, set[int]] = {}
        for (_, s), ident in zip(jobs, got, strict=True):
            by_labels.setdefault(s, set()).add(ident)
        assert all(len(v) == 1 for v in by_labels.values())
        assigned = [next(iter(v)) for v in by_labels.values()]
        assert len(set(assigned)) == 30
        ids, keys = await objects(store)
        assert ids == {next(iter(v)): s for s, v in by_labels.items()}
        assert len(keys) == 30

    asyncio.run(run())


def test_refcounts_release_and_gc() -> None:
    async def run() -> None:
        store = MemoryStore()
        clock = Clock()
        n1 = IdentityAllocator(store, "n1", clock=clock)
        n2 = IdentityAllocator(store, "n2", clock=clock)
        ident = await n1.allocate(WEB)
        assert await n1.allocate(WEB) == ident
        assert await n2.allocate(WEB) == ident
        assert not await n1.release(WEB)  # one local user left
        assert await n1.release(WEB)
        assert not await n1.release(WEB)  # nothing left to release
        _, keys = await objects(store)
        assert list(parse_index(keys[0]).references) == ["n2"]

        clock.now += 3600
        assert await collect_garbage(store, {"n1", "n2"}, clock=clock, grace=60) == []
        assert await n2.release(WEB)
        _, keys = await objects(store)
        assert parse_index(keys[0]).references == {}
        # Unused, but within the grace period: kept.
        clock.now += 30
        assert await collect_garbage(store, {"n1", "n2"}, clock=clock, grace=60) == []
        clock.now += 31
        assert await collect_garbage(store, {"n1", "n2"}, clock=clock, grace=60) == [ident]
        assert await objects(store) == ({}, [])
        assert await n1.lookup(ident) is None
        # The labels can be allocated again afterwards.
        again = await n1.allocate(WEB)
        assert await n2.allocate(WEB) == again

    asyncio.run(run())


def test_gc_removes_identities_only_dead_nodes_reference() -> None:
    async def run() -> None:
        store = MemoryStore()
        clock = Clock()
        dead = IdentityAllocator(store, "dead", clock=clock)
        live = IdentityAllocator(store, "live", clock=clock)
        web = await dead.allocate(WEB)
        db = await dead.allocate(DB)
        assert await live.allocate(DB) == db
        clock.now += 1000
        assert await collect_garbage(store, {"live"}, clock=clock, grace=60) == [web]
        assert set((await objects(store))[0]) == {db}
        # While "dead" is still a member, its references count.
        await dead.allocate(lbls(app="x"))
        clock.now += 1000
        assert await collect_garbage(store, {"dead", "live"}, clock=clock, grace=60) == []

    asyncio.run(run())


def test_gc_removes_numbers_claimed_by_a_crashed_allocator() -> None:
    async def run() -> None:
        store = MemoryStore()
        clock = Clock()
        await store.create(identity_object(300, WEB, clock.now))  # no labels key: orphan
        assert await collect_garbage(store, set(), clock=clock, grace=60) == []
        clock.now += 61
        assert await collect_garbage(store, set(), clock=clock, grace=60) == [300]
        assert await objects(store) == ({}, [])

    asyncio.run(run())


def test_allocation_waits_for_gc_to_finish_deleting() -> None:
    async def run() -> None:
        store = MemoryStore()
        clock = Clock()
        n1 = IdentityAllocator(store, "n1", clock=clock)
        old = await n1.allocate(WEB)
        assert await n1.release(WEB)
        # A GC that marked the labels key and then crashed.
        key = Key(IDENTITY_KIND, "", index_name(WEB))
        marked = await store.get(key)
        assert marked is not None
        marked["status"]["deleting"] = True
        await store.put(marked)
        n2 = IdentityAllocator(store, "n2", clock=clock)
        task = asyncio.create_task(n2.allocate(WEB))
        await asyncio.sleep(0.2)
        assert not task.done()
        # The next GC run finishes the job, whatever the age.
        assert await collect_garbage(store, {"n1", "n2"}, clock=clock, grace=60) == [old]
        new = await asyncio.wait_for(task, 5)
        ids, keys = await objects(store)
        assert ids == {new: WEB}
        assert parse_index(keys[0]).references.keys() == {"n2"}

    asyncio.run(run())


def test_gc_skips_an_identity_referenced_meanwhile() -> None:
    async def run() -> None:
        store = MemoryStore()
        clock = Clock()
        n1 = IdentityAllocator(store, "n1", clock=clock)
        ident = await n1.allocate(WEB)
        await n1.release(WEB)
        clock.now += 1000

        class Interleaved(RacyStore):
            """Lets n2 reference the identity between GC's list and its mark."""

            async def put(self, obj: Resource, expect_revision: int | None = None) -> Resource:
                if obj.get("status", {}).get("deleting"):
                    await IdentityAllocator(store, "n2", clock=clock).allocate(WEB)
                return await self.inner.put(obj, expect_revision)

        racy = Interleaved()
        racy.inner = store
        assert await collect_garbage(racy, {"n1", "n2"}, clock=clock, grace=60) == []
        ids, keys = await objects(store)
        assert ids == {ident: WEB}
        assert list(parse_index(keys[0]).references) == ["n2"]

    asyncio.run(run())


def test_exhaustion_is_a_clear_error() -> None:
    async def run() -> None:
        store = MemoryStore()
        clock = Clock()
        a = IdentityAllocator(store, "n1", min_id=256, max_id=258, clock=clock)
        got = {await a.allocate(lbls(app=str(i))) for i in range(3)}
        assert got == {256, 257, 258}
        with pytest.raises(
            IdentityExhaustedError, match=r"no more available IDs in configured space 256\.\.258"
        ):
            await a.allocate(lbls(app="3"))
        # Existing label sets still resolve.
        assert await a.allocate(lbls(app="0")) in got
        assert await objects(store) != ({}, [])
        assert len((await objects(store))[0]) == 3
        await a.release(lbls(app="1"))
        clock.now += 10_000
        freed = await collect_garbage(store, {"n1"}, clock=clock, grace=60)
        assert len(freed) == 1
        assert await a.allocate(lbls(app="3")) == freed[0]

    asyncio.run(run())


def test_default_range_message() -> None:
    assert str(IdentityExhaustedError(256, 65535)) == (
        "no more available IDs in configured space 256..65535"
    )
    with pytest.raises(ValueError):
        IdentityAllocator(MemoryStore(), "n", min_id=100)


def test_reserved_identities_and_listing() -> None:
    async def run() -> None:
        store = MemoryStore()
        a = IdentityAllocator(store, "n1")
        assert await a.allocate(frozenset({Label("reserved", "host")})) == HOST
        assert (await store.list(IDENTITY_KIND)).items == []
        ident = await a.allocate(WEB)
        listing = await a.list()
        assert listing[1] == frozenset({Label("reserved", "host")})
        assert listing[2] == frozenset({Label("reserved", "world")})
        assert listing[6] == frozenset({Label("reserved", "remote-node")})
        assert listing[ident] == WEB
        assert all(k < 256 for k in listing if k != ident)
        assert await a.lookup(2) == frozenset({Label("reserved", "world")})
        assert await a.lookup(LOCAL_IDENTITY_FLAG | 1) is None
        with pytest.raises(ValueError, match="empty"):
            await a.allocate(frozenset())
        with pytest.raises(ValueError, match="node-local"):
            await a.allocate(cidr_labels("10.0.0.0/8"))

    asyncio.run(run())


def test_identity_object_is_cilium_shaped() -> None:
    obj = identity_object(1234, lbls(app="web", **{"io.kubernetes.pod.namespace": "d"}), 0)
    assert obj["apiVersion"] == "cilium.io/v2"
    assert obj["kind"] == "CiliumIdentity"
    assert obj["metadata"]["name"] == "1234"
    assert obj["security-labels"] == {"k8s:app": "web", "k8s:io.kubernetes.pod.namespace": "d"}
    assert labels_to_map(frozenset({Label("reserved", "host")})) == {"reserved:host": ""}


def test_restarted_node_prunes_references_it_no_longer_needs() -> None:
    async def run() -> None:
        store = MemoryStore()
        before = IdentityAllocator(store, "n1")
        await before.allocate(WEB)
        await before.allocate(DB)
        after = IdentityAllocator(store, "n1")  # restart: local counts are gone
        assert await after.allocate(DB) == await before.allocate(DB)
        assert await after.prune_stale_references() == 1
        _, keys = await objects(store)
        refs = {
            format_labels(parse_index(k).labels)[0]: list(parse_index(k).references) for k in keys
        }
        assert refs == {"k8s:app=db": ["n1"], "k8s:app=web": []}

    asyncio.run(run())


def test_concurrent_allocate_and_release_churn() -> None:
    async def run() -> None:
        store = RacyStore(11)
        nodes = [IdentityAllocator(store, f"n{i}") for i in range(3)]
        rng = random.Random(5)

        async def churn(a: IdentityAllocator) -> None:
            for _ in range(15):
                await a.allocate(WEB)
                if rng.random() < 0.5:
                    await a.release(WEB)
            while a.refcounts():
                await a.release(WEB)

        await asyncio.gather(*(churn(a) for a in nodes for _ in range(3)))
        ids, keys = await objects(store)
        assert len(ids) == 1 and len(keys) == 1
        assert parse_index(keys[0]).references == {}

    asyncio.run(run())


def test_identity_cache_follows_list_and_watch_events() -> None:
    async def run() -> None:
        store = MemoryStore()
        a = IdentityAllocator(store, "n1")
        web = await a.allocate(WEB)
        cache = IdentityCache()
        assert cache.get(HOST) == frozenset({Label("reserved", "host")})
        changes = cache.reset(await store.list(IDENTITY_KIND))
        assert [(c.type, c.identity) for c in changes] == [("upsert", web)]
        assert cache.find(WEB) == web
        since = cache.revision

        seen: list[WatchEvent] = []

        async def consume() -> None:
            deleted = 0
            async for event in store.watch(IDENTITY_KIND, since):
                seen.append(event)
                deleted += event.type == "DELETED" and not is_index(event.object)
                if deleted == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        db = await a.allocate(DB)
        await a.release(DB)
        await collect_garbage(store, set(), clock=lambda: 1e12, grace=0)
        await asyncio.wait_for(task, 5)
        applied = [c for e in seen if (c := cache.apply(e)) is not None]
        # Labels keys and their updates are not identities: only three changes.
        assert applied[0].type == "upsert" and applied[0].identity == db
        assert sorted((c.type, c.identity) for c in applied[1:]) == sorted(
            [("delete", web), ("delete", db)]
        )
        assert cache.find(WEB) is None
        assert set(cache.all()) == {1, 2, 3, 4, 5, 6, 7, 8}
        # Reserved identities never leave.
        assert cache.remove(WORLD) is None
        assert WORLD in cache

    asyncio.run(run())


def test_local_cidr_identities() -> None:
    local = LocalIdentityAllocator(max_index=3)
    a = local.allocate("10.0.0.0/8")
    assert is_local(a) and a == LOCAL_IDENTITY_FLAG | 1
    assert local.allocate("10.1.2.3/8") == a  # same prefix after normalisation
    assert local.lookup(a) == cidr_labels("10.0.0.0/8")
    b = local.allocate("192.168.1.1")
    assert b != a
    assert local.prefixes() == {"10.0.0.0/8": a, "192.168.1.1/32": b}
    assert local.allocate("0.0.0.0/0") == WORLD
    assert not local.release("10.0.0.0/8")
    assert local.release("10.0.0.0/8")
    assert local.lookup(a) is None and local.identity_of("10.0.0.0/8") is None
    # A released number is not handed out again at once.
    c = local.allocate("172.16.0.0/12")
    assert c not in (a, b)
    d = local.allocate("172.17.0.0/16")
    assert d == a
    with pytest.raises(IdentityExhaustedError):
        local.allocate("1.1.1.1")
    assert not local.release("8.8.8.8/32")
