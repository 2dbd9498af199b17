"""Frontends in, the load-balancing map entries they own out (pure).

Every frontend (one address, port and protocol) owns a disjoint set of
entries: its ``axo_lb_svc`` key, its backends (ids handed out to it alone),
its slots and its Maglev table (keyed by its service id). So the maps are
the union of per-frontend :class:`Programmed` records, and changing one
frontend means packing and diffing only its own entries: the writer
(:mod:`lbwriter`) keeps the records and writes the difference.

Ids stay stable: a frontend seen before keeps its service id, a backend it
had keeps its backend id. New ids come from an :class:`IdPool`, smallest
free first; an id given up in one batch is only handed out again in a later
one, so while a batch is being written no lookup through an old id can land
on a new service's entries.
"""

from __future__ import annotations

import functools
import heapq
import socket
import struct
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from axoneme.datapath.linux.lbmaps import (
    BACKEND,
    KIND_FLAGS,
    LB_BE_LOCAL,
    LB_BE_TERMINATING,
    LB_F_AFFINITY,
    LB_F_MAGLEV,
    LB_F_TWO_SCOPES,
    LB_SCOPE_INT,
    PROTO_NUMBERS,
    SLOT_KEY,
    SVC_KEY,
    SVC_VALUE,
    pack_maglev,
)
from axoneme.loadbalancer import maglev
from axoneme.loadbalancer.state import Frontend

__all__ = [
    "WRITE_ORDER",
    "BackendKey",
    "FrontendKey",
    "FrontendRef",
    "IdPool",
    "Ids",
    "MapContents",
    "Maps",
    "Programmed",
    "Settings",
    "assign_ids",
    "frontend_key",
    "ids_of",
    "pack_into",
    "program",
]

FrontendKey = tuple[str, int, int, int]  # vip, port, IP protocol, scope: axo_lb_svc's key
FrontendRef = Hashable  # a Frontend.key: one frontend of the node's desired state
BackendKey = tuple[int, str, int, int]  # svc id, ip, port, proto number
# Writes go in this order, deletions in the reverse: the datapath never follows
# a reference (svc -> slot -> backend, svc -> maglev -> backend) to an entry not
# written yet or already gone.
WRITE_ORDER = ("axo_lb_backend", "axo_lb_maglev", "axo_lb_slot", "axo_lb_svc")

# Every port as the maps hold it: network byte order read as a host-order __u16.
_NPORT = [int.from_bytes(p.to_bytes(2, "big"), "little") for p in range(65536)]
_ID4 = struct.Struct("=I")  # map keys and values holding one id
# Bounded: backend addresses churn over an agent's life.
_aton = functools.lru_cache(maxsize=1 << 16)(socket.inet_aton)


def frontend_key(fe: Frontend) -> FrontendKey:
    """The frontend as its axo_lb_svc key says it (how ids are found again after a restart)."""
    return (fe.ip, fe.port, PROTO_NUMBERS[fe.protocol], LB_SCOPE_INT if fe.internal else 0)


@dataclass
class Ids:
    """Service and backend ids in use; kept stable across syncs and restarts."""

    svc: dict[FrontendKey, int] = field(default_factory=dict)
    backend: dict[BackendKey, int] = field(default_factory=dict)


class IdPool:
    """Ids from 1 up, the smallest free first. Gaps are found by walking up,
    so one odd id read from the maps (0xffffffff) costs nothing."""

    def __init__(self, used: Iterable[int] = ()) -> None:
        self._taken = set(used)  # ids in use when the pool was made, less those given back
        self._top = max(self._taken, default=0)
        # Every id below _next is in use or in _free; every id handed out is below it.
        # Walked up here, on the full path, not at a one-service change's first take.
        self._next = self._top + 1 if len(self._taken) == self._top else 1
        while self._next in self._taken:
            self._next += 1
        self._free: list[int] = []  # given back below _next: a heap

    def take(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        while self._next in self._taken:
            self._next += 1
        self._next += 1
        return self._next - 1

    def take_many(self, n: int) -> tuple[int, ...]:
        if self._free or self._next <= self._top:
            return tuple(self.take() for _ in range(n))
        self._next += n  # the common case: a run above every id in use
        return tuple(range(self._next - n, self._next))

    def give_back(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._taken.discard(i)
            if i < self._next:  # the walk up finds the others
                heapq.heappush(self._free, i)


@dataclass(frozen=True)
class Settings:
    """What every frontend's entries depend on besides the frontend itself."""

    maglev_size: int = maglev.DEFAULT_TABLE_SIZE
    node: str = ""  # backends on this node get LB_BE_LOCAL ("": none)


class Programmed(NamedTuple):
    """One frontend and the ids it holds: its entries are a function of these
    and the :class:`Settings` (:func:`pack_into`), so they are not kept.
    A NamedTuple: a full sync makes 10,000s, a frozen dataclass is 5x slower."""

    frontend: Frontend
    svc_id: int
    backend_ids: tuple[int, ...]  # parallel to frontend.backends

    def backend_id_map(self) -> dict[tuple[str, int], int]:
        backends = self.frontend.backends
        return {(b.ip, b.port): i for b, i in zip(backends, self.backend_ids, strict=True)}

    def owned_keys(self) -> tuple[list[bytes], ...]:
        """Per map of WRITE_ORDER, every key this frontend may hold (a superset:
        a slot per backend, a Maglev table whatever the algorithm); no other
        frontend holds any of them."""
        fe, svc_id = self.frontend, self.svc_id
        id4 = svc_id.to_bytes(4, "little")
        return (
            [i.to_bytes(4, "little") for i in self.backend_ids],
            [id4],
            [SLOT_KEY.pack(svc_id, s) for s in range(1, len(self.backend_ids) + 1)],
            [SVC_KEY.pack(_aton(fe.ip), _NPORT[fe.port], *frontend_key(fe)[2:])],
        )


Maps = tuple[dict[bytes, bytes], ...]  # one dict per map of WRITE_ORDER


def pack_into(
    out: Maps,
    programmed: Iterable[Programmed],
    settings: Settings,
    maglev_cache: dict[tuple[object, ...], bytes],
) -> None:
    """Add the frontends' entries to ``out``. One loop for all of them: a full
    sync runs it for 10,000s of frontends, so locals and no objects."""
    be_map, mag_map, slot_map, svc_map = out
    be_pack, slot_pack, id_bytes = BACKEND.pack, SLOT_KEY.pack, _ID4.pack
    svc_key_pack, svc_pack = SVC_KEY.pack, SVC_VALUE.pack
    node, aton, nport = settings.node, _aton, _NPORT
    for p in programmed:
        fe, svc_id, backend_ids = p.frontend, p.svc_id, p.backend_ids
        proto = PROTO_NUMBERS[fe.protocol]
        # Usually every backend is active (nothing terminating): no set then.
        all_active = fe.active == fe.backends
        active = set() if all_active else {(b.ip, b.port) for b in fe.active}
        for b, be_id in zip(fe.backends, backend_ids, strict=True):
            flags = 0 if all_active or (b.ip, b.port) in active else LB_BE_TERMINATING
            if node and b.node == node:
                flags |= LB_BE_LOCAL
            be_map[id_bytes(be_id)] = be_pack(aton(b.ip), nport[b.port], proto, flags, svc_id)
        if all_active:
            active_ids = backend_ids
        else:  # slots follow the order of fe.active
            by_addr = {(b.ip, b.port): i for b, i in zip(fe.backends, backend_ids, strict=True)}
            active_ids = tuple(by_addr[(b.ip, b.port)] for b in fe.active)
        for slot, be_id in enumerate(active_ids, start=1):
            slot_map[slot_pack(svc_id, slot)] = id_bytes(be_id)
        flags = (LB_F_AFFINITY if fe.affinity_timeout else 0) | KIND_FLAGS.get(fe.type, 0)
        flags |= LB_F_TWO_SCOPES if fe.two_scopes else 0
        size = 0
        if fe.algorithm == "maglev" and active_ids:
            flags |= LB_F_MAGLEV
            size = settings.maglev_size
            named = tuple((b.name, i) for b, i in zip(fe.active, active_ids, strict=True))
            cache_key = (named, size)
            if cache_key not in maglev_cache:
                maglev_cache[cache_key] = pack_maglev(maglev.table(named, size))
            mag_map[id_bytes(svc_id)] = maglev_cache[cache_key]
        scope = LB_SCOPE_INT if fe.internal else 0
        svc_map[svc_key_pack(aton(fe.ip), nport[fe.port], proto, scope)] = svc_pack(
            svc_id, len(active_ids), flags, fe.affinity_timeout, size
        )


@dataclass
class MapContents:
    maps: dict[str, dict[bytes, bytes]] = field(
        default_factory=lambda: {name: {} for name in WRITE_ORDER}
    )

    def as_tuple(self) -> Maps:
        return tuple(self.maps[name] for name in WRITE_ORDER)


def assign_ids(frontends: Iterable[Frontend], previous: Ids) -> dict[FrontendRef, Programmed]:
    """Every frontend (the first of each ``Frontend.key``) with its ids: those in
    ``previous`` kept, new ones taken among the ids ``previous`` does not use."""
    svc_pool = IdPool(previous.svc.values())
    be_pool = IdPool(previous.backend.values())
    have = previous.backend
    out: dict[FrontendRef, Programmed] = {}
    for fe in frontends:
        ref = fe.key
        if ref in out:
            continue  # one frontend per address (desired_frontends already says which)
        key = frontend_key(fe) if previous.svc else None
        svc_id = previous.svc.get(key) if key is not None else None
        if key is None or svc_id is None:  # a new frontend: new backend ids too
            out[ref] = Programmed(fe, svc_pool.take(), be_pool.take_many(len(fe.backends)))
            continue
        proto = key[2]
        be_ids = tuple(
            have.get((svc_id, b.ip, b.port, proto)) or be_pool.take() for b in fe.backends
        )
        out[ref] = Programmed(fe, svc_id, be_ids)
    return out


def ids_of(programmed: Iterable[Programmed]) -> Ids:
    ids = Ids()
    for p in programmed:
        fe = p.frontend
        key = frontend_key(fe)
        ids.svc[key] = p.svc_id
        for b, be_id in zip(fe.backends, p.backend_ids, strict=True):
            ids.backend[(p.svc_id, b.ip, b.port, key[2])] = be_id
    return ids


def program(
    frontends: Iterable[Frontend],
    previous: Ids,
    maglev_size: int = maglev.DEFAULT_TABLE_SIZE,
    maglev_cache: dict[tuple[object, ...], bytes] | None = None,
    node: str = "",
) -> tuple[MapContents, Ids]:
    """The full wanted map contents and the ids they use: the oracle the
    writer's incremental path must agree with."""
    cache = maglev_cache if maglev_cache is not None else {}
    settings = Settings(maglev_size, node)
    programmed = assign_ids(frontends, previous)
    out = MapContents()
    maps = out.as_tuple()
    pack_into(maps, programmed.values(), settings, cache)
    return out, ids_of(programmed.values())
