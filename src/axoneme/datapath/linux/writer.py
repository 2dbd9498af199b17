"""The agent's DatapathPort on the real kernel: pinned BPF maps and tc attachments.

Writes only differences. It keeps a mirror of what it wrote, read back from
the maps when it opens, so a restarted agent diffs against what the kernel
enforces right now rather than rewriting everything. Map writes follow an
order that never lets a packet see a half-written policy: new port sets
first, then the keys that point at them, then stale keys, then stale sets.
Each step is one batch syscall (``MAP_UPDATE_BATCH`` / ``MAP_DELETE_BATCH``);
when a batch fails it is redone entry by entry, so the mirror always holds
what the kernel holds and the error names the entry it refused.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from axoneme.datapath.linux.bpfsys import BpfMap
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import (
    DatapathConfig,
    IPCacheValue,
    LxcInfo,
    PolicyCIDRKey,
    PolicyKey,
    PortsKey,
    PortsValue,
)
from axoneme.datapath.portsets import port_entries
from axoneme.datapath.types import IPCacheEntry, LxcEntry
from axoneme.policy.mapstate import MapState
from axoneme.policy.mapstate import port_entries as state_port_entries

PolicyTuple = tuple[int, int, int]  # identity, endpoint, direction
CIDRTuple = tuple[int, int, str]  # endpoint, direction, prefix
PortsTuple = tuple[int, int, int, int]  # set id, prefix length, protocol, port
K = TypeVar("K")
V = TypeVar("V")
_U32 = struct.Struct("=I")


_POLICY_KEY = PolicyKey.LAYOUT.struct


def _policy_key(k: PolicyTuple) -> bytes:
    return _POLICY_KEY.pack(k[0], k[1], k[2], 0)


def _pack_policy(k: PolicyTuple, set_id: int) -> tuple[bytes, bytes]:
    return _POLICY_KEY.pack(k[0], k[1], k[2], 0), _U32.pack(set_id)


def _cidr_key(k: CIDRTuple) -> bytes:
    return PolicyCIDRKey(*k).pack()


def _pack_cidr(k: CIDRTuple, set_id: int) -> tuple[bytes, bytes]:
    return PolicyCIDRKey(*k).pack(), _U32.pack(set_id)


def _ports_key(k: PortsTuple) -> bytes:
    return PortsKey(*k).pack()


def _pack_ports(k: PortsTuple, verdict: int) -> tuple[bytes, bytes]:
    return PortsKey(*k).pack(), PortsValue(verdict, 0, k[0]).pack()


def write_changed(
    raw: BpfMap,
    mirror: dict[K, V],
    want: Mapping[K, V],
    pack: Callable[[K, V], tuple[bytes, bytes]],
) -> int:
    """Write the entries of ``want`` that differ from ``mirror`` in one batch; the
    mirror follows. How many were written."""
    changed = [(k, v) for k, v in want.items() if mirror.get(k) != v]
    if not changed:
        return 0
    packed = [pack(k, v) for k, v in changed]
    try:
        raw.update_batch(packed)
    except OSError:
        for (k, v), (kb, vb) in zip(changed, packed, strict=True):
            raw.update(kb, vb)  # raises at the entry the kernel refuses
            mirror[k] = v
        return len(changed)
    mirror.update(changed)
    return len(changed)


def delete_stale(
    raw: BpfMap, mirror: dict[K, V], want: Mapping[K, V], pack: Callable[[K], bytes]
) -> int:
    """Delete the keys of ``mirror`` that ``want`` lacks, in one batch; the mirror
    follows. How many were deleted."""
    stale = [k for k in mirror if k not in want]
    if not stale:
        return 0
    keys = [pack(k) for k in stale]
    try:
        raw.delete_batch(keys)
    except OSError:  # e.g. a key gone already: one by one, absent ones are fine
        for k, kb in zip(stale, keys, strict=True):
            raw.delete(kb)
            del mirror[k]
        return len(stale)
    for k in stale:
        del mirror[k]
    return len(stale)


class KernelDatapath:
    def __init__(self, datapath: Datapath) -> None:
        self.dp = datapath
        # The maps share syscall buffers: one thread at a time (see Datapath).
        self._lock = threading.Lock()
        # Keyed by MapState's plain tuples: 200k frozen-dataclass keys cost more to
        # build and hash than the syscalls that write them.
        self._policy: dict[PolicyTuple, int] = {
            (k.identity, k.ep_id, k.dir): v for k, v in datapath.policy.items()
        }
        self._cidr: dict[CIDRTuple, int] = {
            (k.ep_id, k.dir, k.prefix): v for k, v in datapath.policy_cidr.items()
        }
        self._ports: dict[PortsTuple, int] = {}
        for k, v in datapath.ports.raw.items():
            key = PortsKey.unpack(k)
            self._ports[(key.set_id, key.prefixlen, key.proto, key.port)] = PortsValue.unpack(
                v
            ).verdict
        self._ipcache: dict[str, IPCacheValue] = dict(datapath.ipcache.items())

    @classmethod
    def open(cls, pin_dir: Path) -> KernelDatapath:
        return cls(Datapath.open(pin_dir))

    @property
    def reused(self) -> bool:
        return self.dp.reused

    def close(self) -> None:
        with self._lock:
            self.dp.close()

    def attach(self, ifindex: int) -> None:
        with self._lock:
            self.dp.attach(ifindex)

    def attach_overlay(self, ifindex: int) -> None:
        with self._lock:
            self.dp.attach_overlay(ifindex)

    def set_config(self, config: DatapathConfig) -> None:
        with self._lock:
            if self.dp.config.get() != config:
                self.dp.config.set(config)

    def set_endpoint(self, ifindex: int, entry: LxcEntry) -> None:
        zero = "00:00:00:00:00:00"
        info = LxcInfo(
            entry.ep_id,
            entry.identity,
            entry.ipv4,
            entry.flags,
            entry.mac or zero,
            entry.host_mac or zero,
        )
        with self._lock:
            # lxc first: an address that resolves must find its endpoint.
            if self.dp.lxc.get(ifindex) != info:
                self.dp.lxc.set(ifindex, info)
            if self.dp.lxc_ip.get(entry.ipv4) != ifindex:
                self.dp.lxc_ip.set(entry.ipv4, ifindex)

    def delete_endpoint(self, ifindex: int) -> None:
        with self._lock:
            info = self.dp.lxc.get(ifindex)
            if info is not None and self.dp.lxc_ip.get(info.ipv4) == ifindex:
                self.dp.lxc_ip.delete(info.ipv4)
            self.dp.lxc.delete(ifindex)

    def endpoints(self) -> dict[int, LxcEntry]:
        with self._lock:
            return {
                ifindex: LxcEntry(i.ep_id, i.identity, i.ipv4, i.flags, i.mac, i.host_mac)
                for ifindex, i in self.dp.lxc.items()
            }

    def sync_ipcache(self, desired: Mapping[str, IPCacheEntry]) -> int:
        want = {p: IPCacheValue(e.identity, e.tunnel_ip) for p, e in desired.items()}
        changes = 0
        with self._lock:
            for prefix, value in want.items():
                if self._ipcache.get(prefix) != value:
                    self.dp.ipcache.set(prefix, value)
                    self._ipcache[prefix] = value
                    changes += 1
            for prefix in [p for p in self._ipcache if p not in want]:
                self.dp.ipcache.delete(prefix)
                del self._ipcache[prefix]
                changes += 1
        return changes

    def sync_policy(self, state: MapState) -> int:
        ports = state_port_entries(state, port_entries)
        policy, cidr = state.by_identity, state.by_prefix
        dp = self.dp
        with self._lock:
            changes = write_changed(dp.ports.raw, self._ports, ports, _pack_ports)
            changes += write_changed(dp.policy.raw, self._policy, policy, _pack_policy)
            changes += write_changed(dp.policy_cidr.raw, self._cidr, cidr, _pack_cidr)
            changes += delete_stale(dp.policy.raw, self._policy, policy, _policy_key)
            changes += delete_stale(dp.policy_cidr.raw, self._cidr, cidr, _cidr_key)
            changes += delete_stale(dp.ports.raw, self._ports, ports, _ports_key)
        return changes
