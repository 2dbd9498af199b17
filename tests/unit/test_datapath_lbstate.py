"""The load-balancing maps' planner: incremental changes against the full
recompute (``lbprogram.program``) as the oracle, restarts, stale entries, ids."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.datapath.linux.lbmaps import (
    Backend,
    SvcKey,
    SvcValue,
    pack_slot_key,
    unpack_maglev,
    unpack_slot_key,
)
from axoneme.datapath.linux.lbprogram import IdPool, Ids, Settings, frontend_key, ids_of, program
from axoneme.datapath.linux.lbstate import LBState, MapEntries
from axoneme.loadbalancer.state import BackendAddr, Frontend

MAGLEV = 251
SETTINGS = Settings(MAGLEV, "n1")
VIPS = [f"10.96.0.{i}" for i in range(1, 7)]


def frontend(vip: str, backends: list[tuple[int, int, bool, str]], **kw: Any) -> Frontend:
    addrs = tuple(
        BackendAddr(f"10.42.0.{host}", port, "TCP", term, node)
        for host, port, term, node in backends
    )
    unique = tuple({(b.ip, b.port): b for b in addrs}.values())
    ready = tuple(b for b in unique if not b.terminating)
    return Frontend(vip, 80, "TCP", "ClusterIP", f"demo/{vip}", "http", unique,
                    ready or unique, **kw)  # fmt: skip


def decoded(maps: MapEntries) -> dict[tuple[str, int, int], Any]:
    """The maps without their ids: what each frontend leads to."""
    backends = {
        int.from_bytes(k, "little"): Backend.unpack(v) for k, v in maps["axo_lb_backend"].items()
    }
    out: dict[tuple[str, int, int], Any] = {}
    for raw, value in maps["axo_lb_svc"].items():
        k, v = SvcKey.unpack(raw), SvcValue.unpack(value)
        mine = sorted(
            (b.ip, b.port, b.proto, b.flags) for b in backends.values() if b.svc_id == v.svc_id
        )
        slots = [
            backends[int.from_bytes(maps["axo_lb_slot"][pack_slot_key(v.svc_id, s)], "little")]
            for s in range(1, v.count + 1)
        ]
        table: tuple[str, ...] = ()
        if v.maglev_size:
            raw_table = maps["axo_lb_maglev"][v.svc_id.to_bytes(4, "little")]
            table = tuple(backends[i].ip for i in unpack_maglev(raw_table, v.maglev_size))
        flags = (v.count, v.flags, v.affinity_timeout, v.maglev_size)
        out[(k.vip, k.port, k.proto)] = (flags, mine, [(b.ip, b.port) for b in slots], table)
    # Nothing left over: every slot and backend belongs to a service.
    ids = {SvcValue.unpack(v).svc_id for v in maps["axo_lb_svc"].values()}
    assert {b.svc_id for b in backends.values()} <= ids
    assert {unpack_slot_key(k)[0] for k in maps["axo_lb_slot"]} <= ids
    return out


def check(state: LBState, desired: dict[str, Frontend]) -> None:
    fes = list(desired.values())
    # Byte for byte what a full recompute gives with the ids the state holds ...
    oracle, _ = program(fes, ids_of(state.known.values()), MAGLEV, node="n1")
    assert state.current == oracle.maps
    # ... and, ids aside, what a first sync into empty maps gives.
    fresh, _ = program(fes, Ids(), MAGLEV, node="n1")
    assert decoded(state.current) == decoded(fresh.maps)


backend_lists = st.lists(
    st.tuples(
        st.integers(1, 6),
        st.sampled_from([8080, 8081]),
        st.booleans(),
        st.sampled_from(["n1", "n2"]),
    ),
    max_size=4,
)
frontends = st.builds(
    frontend,
    st.sampled_from(VIPS),
    backend_lists,
    algorithm=st.sampled_from(["random", "maglev"]),
    affinity_timeout=st.sampled_from([0, 30]),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), frontends),
        st.tuples(st.just("del"), st.sampled_from(VIPS)),
        st.tuples(st.just("sync"), st.just(None)),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(frontends, max_size=4), ops)
def test_incremental_changes_match_the_full_recompute(
    initial: list[Frontend], steps: list[tuple[str, Any]]
) -> None:
    state = LBState({})
    desired = {fe.ip: fe for fe in initial}
    state.commit(state.plan_sync(desired.values(), SETTINGS, {}))
    check(state, desired)
    for op, arg in steps:
        before = {ref: p.svc_id for ref, p in state.known.items()}
        if op == "set":
            desired[arg.ip] = arg
            plan = state.plan_apply({arg.key: arg}, {})
        elif op == "del":
            fe = desired.pop(arg, None)
            plan = state.plan_apply({fe.key: None} if fe else {}, {})
        else:
            plan = state.plan_sync(desired.values(), SETTINGS, {})
        state.commit(plan)
        check(state, desired)
        # Frontends that stay keep their service ids.
        assert all(state.known[r].svc_id == i for r, i in before.items() if r in state.known)


def test_a_restart_adopts_the_maps_and_a_full_sync_changes_nothing() -> None:
    fes = {v: frontend(v, [(1, 8080, False, "n1"), (2, 8080, True, "node2")]) for v in VIPS}
    first = LBState({})
    first.commit(first.plan_sync(fes.values(), SETTINGS, {}))
    again = LBState(first.current)
    assert not again.synced
    plan = again.plan_sync(fes.values(), SETTINGS, {})
    assert (plan.written, plan.deleted) == (0, 0)
    again.commit(plan)
    assert {r: p.svc_id for r, p in again.known.items()} == {
        r: p.svc_id for r, p in first.known.items()
    }


def test_a_full_sync_after_a_restart_removes_stale_entries() -> None:
    a, b = (frontend(v, [(1, 8080, False, "n1")]) for v in VIPS[:2])
    first = LBState({})
    first.commit(first.plan_sync([a, b], SETTINGS, {}))
    first.current["axo_lb_slot"][pack_slot_key(99, 1)] = (7).to_bytes(4, "little")  # a leftover
    restarted = LBState(first.current)
    plan = restarted.plan_sync([a], SETTINGS, {})
    restarted.commit(plan)
    assert plan.deleted == 4  # b's service, slot and backend, and the leftover slot
    check(restarted, {a.ip: a})


def test_ids_freed_in_a_change_are_not_reused_within_it() -> None:
    a, b = (frontend(v, [(1, 8080, False, "n1")]) for v in VIPS[:2])
    state = LBState({})
    state.commit(state.plan_sync([a], SETTINGS, {}))
    old = state.known[a.key]
    plan = state.plan_apply({a.key: None, b.key: b}, {})
    new = plan.programmed[b.key]
    assert new is not None and new.svc_id != old.svc_id
    assert not set(new.backend_ids) & set(old.backend_ids)
    state.commit(plan)
    check(state, {b.ip: b})
    # The next change may have them back: ids stay small.
    state.commit(state.plan_apply({a.key: a}, {}))
    assert state.known[a.key].svc_id == old.svc_id


def test_a_change_costs_only_its_own_entries() -> None:
    fes = {v: frontend(v, [(1, 8080, False, "n1"), (2, 8080, False, "n1")]) for v in VIPS}
    state = LBState({})
    state.commit(state.plan_sync(fes.values(), SETTINGS, {}))
    one = frontend(VIPS[0], [(1, 8080, False, "n1"), (3, 8080, False, "n1")])
    plan = state.plan_apply({one.key: one}, {})
    # One new backend and its slot; the service entry is unchanged (same count).
    assert {n: len(v) for n, v in plan.changed.items() if v} == {
        "axo_lb_backend": 1,
        "axo_lb_slot": 1,
    }
    assert {n: len(v) for n, v in plan.stale.items() if v} == {"axo_lb_backend": 1}
    assert [frontend_key(p.frontend) for p in plan.programmed.values() if p] == [
        (VIPS[0], 80, 6, 0)
    ]


def test_changes_before_a_full_sync_are_refused() -> None:
    with pytest.raises(RuntimeError, match="full sync"):
        LBState({}).plan_apply({}, {})


def test_id_pool_takes_the_smallest_free_id_and_ignores_odd_ones() -> None:
    pool = IdPool([1, 3, 0xFFFFFFFF])
    assert [pool.take(), pool.take(), pool.take()] == [2, 4, 5]
    pool.give_back([3, 1])
    assert pool.take_many(3) == (1, 3, 6)
    fresh = IdPool()
    assert fresh.take_many(3) == (1, 2, 3) and fresh.take() == 4
