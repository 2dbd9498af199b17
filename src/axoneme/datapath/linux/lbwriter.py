"""Frontends in, the load-balancing maps written as a diff.

:func:`program` is pure: the node's frontends and the ids already handed out
give the full wanted content of every map, as packed bytes. :class:`LBWriter`
holds what the maps contain (read back from the pins when it opens, so a
restarted agent keeps every service and backend id) and writes only the
difference, in batches, in an order that never lets the datapath follow a
reference to something not written yet: backends, then Maglev tables and
slots, then services; deletions the other way round.
"""

from __future__ import annotations

import functools
import itertools
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.lbmaps import (
    BACKEND,
    KIND_FLAGS,
    LB_BE_LOCAL,
    LB_BE_TERMINATING,
    LB_F_AFFINITY,
    LB_F_MAGLEV,
    LB_MAP_NAMES,
    PROTO_NUMBERS,
    SLOT_KEY,
    SVC_KEY,
    SVC_VALUE,
    Backend,
    SvcKey,
    SvcValue,
    pack_maglev,
)
from axoneme.loadbalancer import maglev
from axoneme.loadbalancer.state import Frontend

__all__ = ["Ids", "LBWriter", "MapContents", "SyncStats", "program"]

BackendKey = tuple[int, str, int, int]  # svc id, ip, port, proto number
_WRITE_ORDER = ("axo_lb_backend", "axo_lb_maglev", "axo_lb_slot", "axo_lb_svc")
_BATCH = 4096
# Every port as the maps hold it: network byte order read as a host-order __u16.
_NPORT = [int.from_bytes(p.to_bytes(2, "big"), "little") for p in range(65536)]


@dataclass
class Ids:
    """Service and backend ids in use; kept stable across syncs and restarts."""

    svc: dict[tuple[str, int, int], int] = field(default_factory=dict)  # (vip, port, proto)
    backend: dict[BackendKey, int] = field(default_factory=dict)


@dataclass
class MapContents:
    maps: dict[str, dict[bytes, bytes]] = field(
        default_factory=lambda: {name: {} for name in _WRITE_ORDER}
    )


@dataclass(frozen=True)
class SyncStats:
    written: int
    deleted: int
    services: int
    backends: int


def _allocator(used: Iterable[int]) -> Iterable[int]:
    taken = set(used)
    return (i for i in itertools.count(1) if i not in taken)


def program(
    frontends: Iterable[Frontend],
    previous: Ids,
    maglev_size: int = maglev.DEFAULT_TABLE_SIZE,
    maglev_cache: dict[tuple[object, ...], bytes] | None = None,
    node: str = "",
) -> tuple[MapContents, Ids]:
    """The wanted map contents and the ids they use (old ones kept, new ones free)."""
    frontends = list(frontends)
    cache = maglev_cache if maglev_cache is not None else {}
    out = MapContents()
    svc_map, slot_map = out.maps["axo_lb_svc"], out.maps["axo_lb_slot"]
    be_map, mag_map = out.maps["axo_lb_backend"], out.maps["axo_lb_maglev"]
    # Ids: a frontend or backend seen before keeps its id; new ones take free ids.
    keys = [(fe.ip, fe.port, PROTO_NUMBERS[fe.protocol]) for fe in frontends]
    ids = Ids(svc={k: previous.svc[k] for k in keys if k in previous.svc})
    fresh_svc = iter(_allocator(ids.svc.values()))
    for k in keys:
        if k not in ids.svc:
            ids.svc[k] = next(fresh_svc)
    missing = []
    for fe, k in zip(frontends, keys, strict=True):
        svc_id = ids.svc[k]
        for b in fe.backends:
            bkey = (svc_id, b.ip, b.port, PROTO_NUMBERS[b.protocol])
            be_id = previous.backend.get(bkey)
            if be_id is None:
                missing.append(bkey)
            else:
                ids.backend[bkey] = be_id
    fresh_be = iter(_allocator(ids.backend.values()))
    for bkey in missing:
        if bkey not in ids.backend:
            ids.backend[bkey] = next(fresh_be)
    # The loop below runs once per frontend and backend (10,000s): plain tuples
    # and pre-bound packers rather than dataclasses (docs/services.md, bench).
    be_pack, svc_pack, slot_pack = BACKEND.pack, SVC_VALUE.pack, SLOT_KEY.pack
    aton = functools.lru_cache(maxsize=None)(socket.inet_aton)
    svc_key_pack = SVC_KEY.pack
    for fe, key in zip(frontends, keys, strict=True):
        svc_id = ids.svc[key]
        active = {(b.ip, b.port) for b in fe.active}
        for b in fe.backends:
            proto = PROTO_NUMBERS[b.protocol]
            be_id = ids.backend[(svc_id, b.ip, b.port, proto)]
            flags = 0 if (b.ip, b.port) in active else LB_BE_TERMINATING
            if node and b.node == node:
                flags |= LB_BE_LOCAL
            be_map[be_id.to_bytes(4, "little")] = be_pack(
                aton(b.ip), _NPORT[b.port], proto, flags, svc_id
            )
        active_ids = [
            ids.backend[(svc_id, b.ip, b.port, PROTO_NUMBERS[b.protocol])] for b in fe.active
        ]
        for slot, be_id in enumerate(active_ids, start=1):
            slot_map[slot_pack(svc_id, slot)] = be_id.to_bytes(4, "little")
        flags = (LB_F_AFFINITY if fe.affinity_timeout else 0) | KIND_FLAGS.get(fe.type, 0)
        size = 0
        if fe.algorithm == "maglev" and active_ids:
            flags |= LB_F_MAGLEV
            size = maglev_size
            named = tuple((b.name, i) for b, i in zip(fe.active, active_ids, strict=True))
            cache_key = (named, size)
            if cache_key not in cache:
                cache[cache_key] = pack_maglev(maglev.table(named, size))
            mag_map[svc_id.to_bytes(4, "little")] = cache[cache_key]
        raw_key = svc_key_pack(aton(key[0]), _NPORT[key[1]], key[2])
        svc_map[raw_key] = svc_pack(svc_id, len(active_ids), flags, fe.affinity_timeout, size)
    return out, ids


class LBWriter:
    """The pinned load-balancing maps of one node, and what they hold."""

    def __init__(self, maps: Mapping[str, bpfsys.BpfMap]) -> None:
        self._maps = dict(maps)
        self.current: dict[str, dict[bytes, bytes]] = {
            name: dict(self._maps[name].lookup_batch()) for name in _WRITE_ORDER
        }
        self.maglev_cache: dict[tuple[object, ...], bytes] = {}
        self._ids = self.ids()

    @classmethod
    def open(cls, pin_dir: Path) -> LBWriter:
        maps: dict[str, bpfsys.BpfMap] = {}
        try:
            for name in LB_MAP_NAMES:
                maps[name] = bpfsys.BpfMap.open_pinned(pin_dir / name)
            return cls(maps)
        except BaseException:
            for m in maps.values():
                m.close()
            raise

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def map(self, name: str) -> bpfsys.BpfMap:
        return self._maps[name]

    def ids(self) -> Ids:
        """The ids the maps already use (after a restart: the previous agent's)."""
        ids = Ids()
        for raw, value in self.current["axo_lb_svc"].items():
            k = SvcKey.unpack(raw)
            ids.svc[(k.vip, k.port, k.proto)] = SvcValue.unpack(value).svc_id
        for raw, value in self.current["axo_lb_backend"].items():
            be = Backend.unpack(value)
            ids.backend[(be.svc_id, be.ip, be.port, be.proto)] = int.from_bytes(raw, "little")
        return ids

    def sync(self, frontends: Iterable[Frontend], maglev_size: int, node: str = "") -> SyncStats:
        wanted, ids = program(frontends, self._ids, maglev_size, self.maglev_cache, node)
        written = deleted = 0
        for name in _WRITE_ORDER:
            have, want = self.current[name], wanted.maps[name]
            changed = [(k, v) for k, v in want.items() if have.get(k) != v]
            for i in range(0, len(changed), _BATCH):
                self._maps[name].update_batch(changed[i : i + _BATCH])
            have.update(changed)
            written += len(changed)
        for name in reversed(_WRITE_ORDER):
            have, want = self.current[name], wanted.maps[name]
            stale = [k for k in have if k not in want]
            for i in range(0, len(stale), _BATCH):
                self._maps[name].delete_batch(stale[i : i + _BATCH])
            for k in stale:
                del have[k]
            deleted += len(stale)
        self._ids = ids  # only after every write went through: a failed sync reuses the old
        if len(self.maglev_cache) > 4 * max(len(wanted.maps["axo_lb_maglev"]), 16):
            self.maglev_cache.clear()  # bounded: old backend sets are not coming back
        return SyncStats(
            written,
            deleted,
            len(self.current["axo_lb_svc"]),
            len(self.current["axo_lb_backend"]),
        )
