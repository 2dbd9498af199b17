"""The agent's DatapathPort on the real kernel: pinned BPF maps and tc attachments.

Writes only differences. It keeps a mirror of what it wrote, read back from
the maps when it opens, so a restarted agent diffs against what the kernel
enforces right now rather than rewriting everything. Map writes follow an
order that never lets a packet see a half-written policy: new port sets
first, then the keys that point at them, then stale keys, then stale sets.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

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


class KernelDatapath:
    def __init__(self, datapath: Datapath) -> None:
        self.dp = datapath
        # The maps share syscall buffers: one thread at a time (see Datapath).
        self._lock = threading.Lock()
        self._policy: dict[PolicyKey, int] = dict(datapath.policy.items())
        self._cidr: dict[PolicyCIDRKey, int] = dict(datapath.policy_cidr.items())
        self._ports: dict[PortsKey, int] = {
            PortsKey.unpack(k): PortsValue.unpack(v).verdict for k, v in datapath.ports.raw.items()
        }
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
        ports = {
            PortsKey(set_id, prefixlen, proto, port): verdict
            for (set_id, prefixlen, proto, port), verdict in state_port_entries(
                state, port_entries
            ).items()
        }
        policy = {PolicyKey(i, ep, d): s for (i, ep, d), s in state.by_identity.items()}
        cidr = {PolicyCIDRKey(ep, d, prefix): s for (ep, d, prefix), s in state.by_prefix.items()}
        changes = 0
        with self._lock:
            for key, verdict in ports.items():
                if self._ports.get(key) != verdict:
                    self.dp.ports.set(key, PortsValue(verdict, 0, key.set_id))
                    self._ports[key] = verdict
                    changes += 1
            for pkey, set_id in policy.items():
                if self._policy.get(pkey) != set_id:
                    self.dp.policy.set(pkey, set_id)
                    self._policy[pkey] = set_id
                    changes += 1
            for ckey, set_id in cidr.items():
                if self._cidr.get(ckey) != set_id:
                    self.dp.policy_cidr.set(ckey, set_id)
                    self._cidr[ckey] = set_id
                    changes += 1
            for pkey in [k for k in self._policy if k not in policy]:
                self.dp.policy.delete(pkey)
                del self._policy[pkey]
                changes += 1
            for ckey in [k for k in self._cidr if k not in cidr]:
                self.dp.policy_cidr.delete(ckey)
                del self._cidr[ckey]
                changes += 1
            for key in [k for k in self._ports if k not in ports]:
                self.dp.ports.delete(key)
                del self._ports[key]
                changes += 1
        return changes
