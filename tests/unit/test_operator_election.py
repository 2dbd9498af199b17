"""Leader election on store leases (embedded store, real time, short TTLs)."""

from __future__ import annotations

import asyncio
import time

import pytest

from axoneme.operator.election import Elector, Term, leader_of
from axoneme.store.memory import MemoryStore
from axoneme.store.types import StoreError


def test_term_ends_ttl_after_the_last_renewal_sent() -> None:
    term = Term(ttl=5, renewed_at=100)
    assert not term.over(104.9)
    term.renewed(103)
    term.renewed(101)  # an older renewal answered late changes nothing
    assert not term.over(107.9)
    assert term.over(108)


def test_ttl_below_two_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="election ttl"):
        Elector(MemoryStore(), "x", "a", 1)


async def _wait(cond: object, timeout: float) -> float:
    start = time.monotonic()
    while not cond():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, "condition not reached"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_one_leader_and_takeover_within_ttl_plus_retry_when_it_dies() -> None:
    async def run() -> None:
        store = MemoryStore()
        ttl, retry = 2, 0.2
        working: list[str] = []

        def work_for(name: str) -> object:
            async def work() -> None:
                working.append(name)
                await asyncio.Event().wait()

            return work

        a = Elector(store, "op", "a", ttl, retry=retry)
        b = Elector(store, "op", "b", ttl, retry=retry)
        ta = asyncio.ensure_future(a.run(work_for("a")))  # type: ignore[arg-type]
        await _wait(a.leading.is_set, 3)
        tb = asyncio.ensure_future(b.run(work_for("b")))  # type: ignore[arg-type]
        await asyncio.sleep(ttl * 1.5)  # a renews: b must not take over meanwhile
        assert working == ["a"] and not b.leading.is_set()
        assert await leader_of(store, "op") == "a"
        # "kill -9": a stops without resigning; its lease runs out.
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        took = await _wait(b.leading.is_set, ttl + retry + 1.0)
        assert took <= ttl + retry + 0.5, took
        # The work task starts on the loop's next turn after the term is won.
        await _wait(lambda: len(working) > 1, 0.5)
        assert working == ["a", "b"]
        assert await leader_of(store, "op") == "b"
        # A graceful stop hands over at once.
        a2 = Elector(store, "op", "a2", ttl, retry=retry)
        t2 = asyncio.ensure_future(a2.run(work_for("a2")))  # type: ignore[arg-type]
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)
        await b.resign()
        took = await _wait(a2.leading.is_set, 2)
        assert took <= retry + 0.3, took
        t2.cancel()
        await asyncio.gather(t2, return_exceptions=True)

    asyncio.run(run())


class Unreachable(MemoryStore):
    down = False

    async def keepalive(self, lease: int) -> int:
        if self.down:
            raise StoreError("unreachable")
        return await super().keepalive(lease)


def test_a_leader_that_cannot_renew_stops_working_within_the_ttl() -> None:
    async def run() -> None:
        store = Unreachable()
        stopped = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()

        e = Elector(store, "op", "a", 2, retry=0.1)
        task = asyncio.ensure_future(e.run(work))
        await _wait(e.leading.is_set, 2)
        store.down = True
        cut = time.monotonic()
        await asyncio.wait_for(stopped.wait(), 4)
        assert time.monotonic() - cut <= 2 + 0.8  # ttl, plus one renewal period of slack
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
