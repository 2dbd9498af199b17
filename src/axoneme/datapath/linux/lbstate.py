"""What the load-balancing maps hold and which frontend owns what, without I/O.

:class:`LBState` turns a change into a :class:`Plan`: the entries to write
(those differing from what the maps hold) and the keys to delete, per map.
The writer (:mod:`lbwriter`) carries a plan out with batch syscalls and then
commits it; a failed write leaves the state as it was before the plan, to be
rebuilt from the maps (:meth:`LBState.reset`).

Two kinds of plan: :meth:`LBState.plan_sync` for a full list of frontends
(the first one after a reset compares every entry with the maps, so stale
ones go; later ones only look at frontends that differ from the last), and
:meth:`LBState.plan_apply` for the frontends named, at a cost proportional
to them.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from axoneme.datapath.linux.lbmaps import BACKEND, SVC_KEY, SVC_VALUE
from axoneme.datapath.linux.lbprogram import (
    WRITE_ORDER,
    FrontendRef,
    IdPool,
    Ids,
    Programmed,
    Settings,
    assign_ids,
    pack_into,
)
from axoneme.loadbalancer.state import Frontend

__all__ = ["LBState", "MapEntries", "Plan"]

MapEntries = dict[str, dict[bytes, bytes]]  # map name -> key -> value
# A port as the maps hold it (network order read as a host-order __u16), back to a number.
_HPORT = [int.from_bytes(p.to_bytes(2, "little"), "big") for p in range(65536)]
_ntoa = functools.lru_cache(maxsize=1 << 16)(socket.inet_ntoa)
MaglevCache = dict[tuple[object, ...], bytes]


@dataclass
class Plan:
    """One change: write ``changed`` (backends, Maglev, slots, services), then
    delete ``stale`` in the reverse order."""

    settings: Settings
    changed: MapEntries = field(default_factory=dict)
    stale: dict[str, list[bytes]] = field(default_factory=dict)
    programmed: dict[FrontendRef, Programmed | None] = field(default_factory=dict)
    full: bool = False  # programmed is every frontend (else: only those that change)
    freed_svc: list[int] = field(default_factory=list)
    freed_be: list[int] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(len(v) for v in self.changed.values())

    @property
    def deleted(self) -> int:
        return sum(len(v) for v in self.stale.values())


def ids_in(current: MapEntries) -> Ids:
    """The ids the maps use (after a restart: the previous agent's)."""
    # Raw structs, not the SvcKey/Backend twins: 10,000s of entries after a restart.
    ids = Ids()
    key_unpack, value_unpack, be_unpack = SVC_KEY.unpack, SVC_VALUE.unpack, BACKEND.unpack
    ntoa, hport = _ntoa, _HPORT
    for raw, value in current["axo_lb_svc"].items():
        vip, port, proto, scope = key_unpack(raw)
        ids.svc[(ntoa(vip), hport[port], proto, scope)] = value_unpack(value)[0]
    for raw, value in current["axo_lb_backend"].items():
        ip, port, proto, _, svc_id = be_unpack(value)
        ids.backend[(svc_id, ntoa(ip), hport[port], proto)] = int.from_bytes(raw, "little")
    return ids


class LBState:
    def __init__(self, current: MapEntries) -> None:
        self.current: MapEntries = {}
        self.known: dict[FrontendRef, Programmed] = {}
        self.settings: Settings | None = None  # None: known says nothing; a full sync next
        self._svc_pool = IdPool()
        self._be_pool = IdPool()
        self.reset(current)

    def reset(self, current: MapEntries) -> None:
        """Start over from what the maps hold (at open, after a failed write)."""
        self.current = {name: dict(current.get(name, {})) for name in WRITE_ORDER}
        self.known = {}
        self.settings = None

    @property
    def synced(self) -> bool:
        return self.settings is not None

    def plan_sync(
        self, frontends: Iterable[Frontend], settings: Settings, cache: MaglevCache
    ) -> Plan:
        """The maps holding exactly ``frontends`` (the first of each ``Frontend.key``)."""
        if self.settings != settings:
            return self._plan_full(frontends, settings, cache)
        wanted: dict[FrontendRef, Frontend] = {}
        for fe in frontends:
            wanted.setdefault(fe.key, fe)
        known = self.known
        changes: dict[FrontendRef, Frontend | None] = {
            k: fe
            for k, fe in wanted.items()
            if (p := known.get(k)) is None or (p.frontend is not fe and p.frontend != fe)
        }
        changes.update((k, None) for k in known if k not in wanted)
        return self.plan_apply(changes, cache)

    def plan_apply(
        self, changes: Mapping[FrontendRef, Frontend | None], cache: MaglevCache
    ) -> Plan:
        """Set or (None) remove the frontends at these ``Frontend.key``s; every
        other one stays. Takes new ids from the pools (given back on reset)."""
        settings = self.settings
        if settings is None:
            raise RuntimeError("a full sync must come before changes to single frontends")
        plan = Plan(settings)
        writes: MapEntries = {name: {} for name in WRITE_ORDER}
        out = tuple(writes[name] for name in WRITE_ORDER)
        gone: dict[str, set[bytes]] = {name: set() for name in WRITE_ORDER}
        for ref, fe in changes.items():
            old = self.known.get(ref)
            if old is None and fe is None:
                continue
            if old is not None and fe is not None and old.frontend == fe:
                continue
            new = None
            if fe is not None:
                svc_id = old.svc_id if old is not None else self._svc_pool.take()
                prev = old.backend_id_map() if old is not None else {}
                take = self._be_pool.take
                be_ids = tuple(prev.get((b.ip, b.port)) or take() for b in fe.backends)
                new = Programmed(fe, svc_id, be_ids)
                pack_into(out, (new,), settings, cache)
            if old is not None:
                for name, keys in zip(WRITE_ORDER, old.owned_keys(), strict=True):
                    gone[name].update(keys)
                kept = set(new.backend_ids) if new is not None else set()
                plan.freed_be += [i for i in old.backend_ids if i not in kept]
                if new is None:
                    plan.freed_svc.append(old.svc_id)
            plan.programmed[ref] = new
        self._diff(plan, writes, gone)
        return plan

    def _plan_full(
        self, frontends: Iterable[Frontend], settings: Settings, cache: MaglevCache
    ) -> Plan:
        """Every frontend packed and every entry compared with what the maps hold."""
        programmed = assign_ids(frontends, ids_in(self.current))
        writes: MapEntries = {name: {} for name in WRITE_ORDER}
        pack_into(tuple(writes[name] for name in WRITE_ORDER), programmed.values(), settings, cache)
        gone = {
            name: {k for k in self.current[name] if k not in writes[name]} for name in WRITE_ORDER
        }
        plan = Plan(settings, programmed=dict(programmed), full=True)
        self._diff(plan, writes, gone)
        return plan

    def _diff(self, plan: Plan, writes: MapEntries, gone: dict[str, set[bytes]]) -> None:
        for name in WRITE_ORDER:
            have, want = self.current[name], writes[name]
            # A first sync into empty maps writes everything: no comparing.
            plan.changed[name] = (
                {k: v for k, v in want.items() if have.get(k) != v} if have else want
            )
            plan.stale[name] = [k for k in gone[name] if k in have and k not in want]

    def commit(self, plan: Plan) -> None:
        """The plan's writes and deletions went through: hold them."""
        for name in WRITE_ORDER:
            have = self.current[name]
            have.update(plan.changed[name])
            for k in plan.stale[name]:
                del have[k]
        if plan.full:
            self.known = {k: p for k, p in plan.programmed.items() if p is not None}
            self.settings = plan.settings
            self._svc_pool = IdPool(p.svc_id for p in self.known.values())
            self._be_pool = IdPool(i for p in self.known.values() for i in p.backend_ids)
            return
        for ref, p in plan.programmed.items():
            if p is None:
                del self.known[ref]
            else:
                self.known[ref] = p
        # Only now: an id freed by this plan is not handed out within it.
        self._svc_pool.give_back(plan.freed_svc)
        self._be_pool.give_back(plan.freed_be)
