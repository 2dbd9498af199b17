"""Identity allocation against a real etcd: three nodes (three clients) racing."""

from __future__ import annotations

import asyncio
import random

from axoneme.identity.allocator import (
    IDENTITY_KIND,
    IdentityAllocator,
    collect_garbage,
    is_index,
    parse_index,
)
from axoneme.labels.model import Label, LabelSet
from axoneme.store.etcd import EtcdStore


def lbls(**kv: str) -> LabelSet:
    return frozenset(Label("k8s", k, v) for k, v in kv.items())


WEB = lbls(app="web")


def test_three_nodes_race_for_the_same_labels(etcd: str) -> None:
    async def run() -> None:
        stores = [EtcdStore(etcd) for _ in range(3)]
        try:
            # The same seed makes the nodes also collide on the numbers they pick.
            nodes = [
                IdentityAllocator(st, f"n{i}", rng=random.Random(1)) for i, st in enumerate(stores)
            ]
            got = await asyncio.gather(*(a.allocate(WEB) for a in nodes for _ in range(20)))
            assert len(set(got)) == 1
            (ident,) = set(got)
            items = (await stores[0].list(IDENTITY_KIND)).items
            assert [o["metadata"]["name"] for o in items if not is_index(o)] == [str(ident)]
            keys = [parse_index(o) for o in items if is_index(o)]
            assert len(keys) == 1 and keys[0].identity == ident
            assert sorted(keys[0].references) == ["n0", "n1", "n2"]
            for a in nodes:
                assert await a.lookup(ident) == WEB
        finally:
            for store in stores:
                await store.close()

    asyncio.run(run())


def test_different_labels_get_different_ids_and_gc_frees_them(etcd: str) -> None:
    async def run() -> None:
        stores = [EtcdStore(etcd) for _ in range(3)]
        try:
            nodes = [
                IdentityAllocator(st, f"n{i}", min_id=256, max_id=280, rng=random.Random(2))
                for i, st in enumerate(stores)
            ]
            sets = [lbls(app=f"a{i}") for i in range(12)]
            jobs = [(a, s) for s in sets for a in nodes]
            random.Random(4).shuffle(jobs)
            got = await asyncio.gather(*(a.allocate(s) for a, s in jobs))
            by_labels: dict[LabelSet, set[int]] = {}
            for (_, s), ident in zip(jobs, got, strict=True):
                by_labels.setdefault(s, set()).add(ident)
            assert all(len(v) == 1 for v in by_labels.values())
            assert len({next(iter(v)) for v in by_labels.values()}) == 12

            await asyncio.gather(*(a.release(s) for a, s in jobs))
            freed = await collect_garbage(stores[0], {"n0", "n1", "n2"}, grace=0)
            assert len(freed) == 12
            assert (await stores[0].list(IDENTITY_KIND)).items == []
        finally:
            for store in stores:
                await store.close()

    asyncio.run(run())
