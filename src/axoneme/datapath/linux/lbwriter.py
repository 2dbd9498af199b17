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

A backend (address, port, protocol) that leaves every service takes its
north-south NAT entries with it (``axo_lb_nat``, when the node has one: the
forward entries translating to it and the reverse entries keyed by it), so a
client still talking to it chooses a live backend with its next packet
instead of hanging, as Cilium re-selects when a flow's backend is gone.
Terminating backends stay in the maps, and so do their flows.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.lbmaps import BACKEND, LB_MAP_NAMES, NAT_F_INGRESS, NAT_MAP
from axoneme.datapath.linux.lbprogram import WRITE_ORDER, FrontendRef, Ids, Settings
from axoneme.datapath.linux.lbstate import LBState, Plan, ids_in
from axoneme.loadbalancer.state import Frontend

__all__ = ["LBWriter", "SyncStats", "backend_addrs", "nat_keys_to"]

log = logging.getLogger(__name__)

_BATCH = 4096
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")

# A backend as NAT entries name it: address, port and protocol, as stored.
BackendAddr = tuple[bytes, int, int]


def backend_addrs(backends: Mapping[bytes, bytes]) -> set[BackendAddr]:
    """The (address, port, protocol) of each ``axo_lb_backend`` value."""
    return {(ip, port, proto) for ip, port, proto, _, _ in map(BACKEND.unpack, backends.values())}


def nat_keys_to(entries: Iterable[tuple[bytes, bytes]], gone: set[BackendAddr]) -> list[bytes]:
    """The ``axo_lb_nat`` keys of flows to these backends: forward entries that
    translate to one (struct lb_nat daddr/dport), reverse entries keyed by one
    (its replies: struct lb_nat_key saddr/sport)."""
    out = []
    for key, value in entries:
        proto = key[12]
        if (key[0:4], _U16.unpack_from(key, 8)[0], proto) in gone or (
            _U32.unpack_from(value, 12)[0] & NAT_F_INGRESS
            and (value[4:8], _U16.unpack_from(value, 10)[0], proto) in gone
        ):
            out.append(key)
    return out


@dataclass(frozen=True)
class SyncStats:
    written: int
    deleted: int
    services: int
    backends: int


class LBWriter:
    """The pinned load-balancing maps of one node, and what they hold."""

    def __init__(self, maps: Mapping[str, bpfsys.BpfMap], pin_dir: Path | None = None) -> None:
        self._maps = dict(maps)
        self._pin_dir = pin_dir  # where axo_lb_nat is, once bpf_host.o pinned it
        self.maglev_cache: dict[tuple[object, ...], bytes] = {}
        self.state = LBState(self._read())

    @classmethod
    def open(cls, pin_dir: Path) -> LBWriter:
        maps: dict[str, bpfsys.BpfMap] = {}
        try:
            for name in LB_MAP_NAMES:
                maps[name] = bpfsys.BpfMap.open_pinned(pin_dir / name)
            return cls(maps, pin_dir)
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
        before = backend_addrs(self.state.current["axo_lb_backend"])
        self.state.commit(plan)
        current = self.state.current
        gone = before - backend_addrs(current["axo_lb_backend"])
        if gone:
            self.purge_nat(gone)
        if len(self.maglev_cache) > 4 * max(len(current["axo_lb_maglev"]), 16):
            self.maglev_cache.clear()  # bounded: old backend sets are not coming back
        return SyncStats(
            plan.written, plan.deleted, len(current["axo_lb_svc"]), len(current["axo_lb_backend"])
        )

    def purge_nat(self, gone: set[BackendAddr]) -> int:
        """Delete the NAT entries of flows to these backends; how many went. A
        failure is logged: the entries then expire (or the GC takes them)."""
        if self._pin_dir is None or not (self._pin_dir / NAT_MAP).exists():
            return 0
        try:
            with bpfsys.BpfMap.open_pinned(self._pin_dir / NAT_MAP) as nat:
                return sum(nat.delete(k) for k in nat_keys_to(nat.lookup_batch(), gone))
        except OSError as exc:
            log.warning("NAT entries of removed backends: %s", exc)
            return 0

    def _read(self) -> dict[str, dict[bytes, bytes]]:
        out = {}
        for name in WRITE_ORDER:
            out[name] = dict(self._maps[name].lookup_batch())  # ~4 MiB of values a call
        return out
