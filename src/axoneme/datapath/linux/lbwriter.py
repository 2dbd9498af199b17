"""The load-balancing maps of one node, written as a diff.

:mod:`lbprogram` packs frontends into entries and :mod:`lbstate` plans each
change (pure); :class:`LBWriter` reads what the maps hold when it opens (so
a restarted agent keeps every service and backend id), carries plans out
with batch syscalls and commits them. Writes go backends, then Maglev
tables and slots, then services, deletions the other way round, so the
datapath never follows a reference to something not written yet.

:meth:`LBWriter.sync` converges on a full list of frontends (at start and on
every resync); :meth:`LBWriter.apply` changes only the frontends named, at a
cost proportional to them (the agent's path for each Service or
EndpointSlice change).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.lbmaps import LB_MAP_NAMES
from axoneme.datapath.linux.lbprogram import WRITE_ORDER, FrontendRef, Ids, Settings
from axoneme.datapath.linux.lbstate import LBState, Plan, ids_in
from axoneme.loadbalancer.state import Frontend

__all__ = ["LBWriter", "SyncStats"]

_BATCH = 4096


@dataclass(frozen=True)
class SyncStats:
    written: int
    deleted: int
    services: int
    backends: int


class LBWriter:
    """The pinned load-balancing maps of one node, and what they hold."""

    def __init__(self, maps: Mapping[str, bpfsys.BpfMap]) -> None:
        self._maps = dict(maps)
        self.maglev_cache: dict[tuple[object, ...], bytes] = {}
        self.state = LBState(self._read())

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

    @property
    def current(self) -> dict[str, dict[bytes, bytes]]:
        """What the maps hold (as last written or read)."""
        return self.state.current

    @property
    def synced(self) -> bool:
        """True when :meth:`apply` may be used (a full sync went through)."""
        return self.state.synced

    def ids(self) -> Ids:
        """The ids the maps use (after a restart: the previous agent's)."""
        return ids_in(self.state.current)

    def sync(self, frontends: Iterable[Frontend], maglev_size: int, node: str = "") -> SyncStats:
        """Make the maps hold exactly ``frontends`` (the first of each ``Frontend.key``)."""
        settings = Settings(maglev_size, node)
        return self._carry_out(self.state.plan_sync(frontends, settings, self.maglev_cache))

    def apply(self, changes: Mapping[FrontendRef, Frontend | None]) -> SyncStats:
        """Set or (None) remove the frontends at these ``Frontend.key``s, leaving
        every other one as it is. Needs a full :meth:`sync` first."""
        return self._carry_out(self.state.plan_apply(changes, self.maglev_cache))

    def _carry_out(self, plan: Plan) -> SyncStats:
        """Write, then delete, then commit; on a failure re-read the maps and
        require a full sync (what was half written is compared again)."""
        try:
            for name in WRITE_ORDER:
                changed, m = plan.changed[name], self._maps[name]
                keys, values = list(changed), list(changed.values())
                for i in range(0, len(keys), _BATCH):
                    m.update_batch_kv(keys[i : i + _BATCH], values[i : i + _BATCH])
            for name in reversed(WRITE_ORDER):
                stale, m = plan.stale[name], self._maps[name]
                for i in range(0, len(stale), _BATCH):
                    m.delete_batch(stale[i : i + _BATCH])
        except BaseException:
            with contextlib.suppress(OSError):  # else: the next full sync rewrites what differs
                self.state.reset(self._read())
            self.state.settings = None  # even when the maps could not be read
            raise
        self.state.commit(plan)
        current = self.state.current
        if len(self.maglev_cache) > 4 * max(len(current["axo_lb_maglev"]), 16):
            self.maglev_cache.clear()  # bounded: old backend sets are not coming back
        return SyncStats(
            plan.written, plan.deleted, len(current["axo_lb_svc"]), len(current["axo_lb_backend"])
        )

    def _read(self) -> dict[str, dict[bytes, bytes]]:
        out = {}
        for name in WRITE_ORDER:
            out[name] = dict(self._maps[name].lookup_batch())  # ~4 MiB of values a call
        return out
