"""Typed views of the pinned datapath maps (docs/datapath.md, "Maps").

Two layers:

- Python twins of the C structs of ``bpf/include/axoneme.h``: frozen
  dataclasses with ``pack()`` / ``unpack()``. Each declares its C members in
  order (:class:`Layout`); the struct format is built from them, its size is
  asserted at import, and a privileged test compares every member offset with
  the BTF of the built object.
- One class per map, opened from its pin, with typed methods. Byte order
  (NBO addresses and ports, big-endian LPM fields) is handled here and
  nowhere else.

Set ids: any ``u32``; 0 is best avoided, because events report "decided by
the default" as cookie 0.
"""

from __future__ import annotations

import builtins
import functools
import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from axoneme.datapath.linux.bpfsys import BPF_ANY, BpfMap
from axoneme.datapath.linux.lbmaps import NAT_MAP, Nat, NatKey
from axoneme.datapath.portsets import PortsEntry, check_entry, port_verdicts
from axoneme.policy.types import PortVerdicts

__all__ = [
    "CFG_HOST_ROUTING_BPF",
    "CFG_TUNNEL",
    "EGRESS",
    "INGRESS",
    "LAYOUTS",
    "MAP_NAMES",
    "CTMap",
    "ConfigMap",
    "CtKey",
    "CtValue",
    "DatapathConfig",
    "IPCacheKey",
    "IPCacheMap",
    "IPCacheValue",
    "Layout",
    "LxcIPMap",
    "LxcInfo",
    "LxcMap",
    "Metric",
    "MetricsMap",
    "NatMap",
    "PolicyCIDRKey",
    "PolicyCIDRMap",
    "PolicyKey",
    "PolicyMap",
    "PortsKey",
    "PortsMap",
    "PortsValue",
    "lxc_flags",
]

INGRESS = 0  # policy_key.dir / ct_key.dir / event.dir
EGRESS = 1

LXC_F_INGRESS_ENFORCED = 1 << 0
LXC_F_EGRESS_ENFORCED = 1 << 1
LXC_F_INGRESS_AUDIT = 1 << 2
LXC_F_EGRESS_AUDIT = 1 << 3

MAP_NAMES = (
    "axo_lxc",
    "axo_ipcache",
    "axo_policy",
    "axo_policy_cidr",
    "axo_policy_ports",
    "axo_ct",
    "axo_events",
    "axo_metrics",
    "axo_lxc_ip",
    "axo_config",
    "axo_frag",
)


@dataclass(frozen=True)
class Layout:
    """A C struct as ``(member, struct code)`` pairs, no implicit padding."""

    c_name: str
    members: tuple[tuple[str, str], ...]
    size: int  # sizeof() in C, asserted against the format

    def __post_init__(self) -> None:
        if self.struct.size != self.size:
            raise AssertionError(
                f"{self.c_name}: format is {self.struct.size} bytes, C has {self.size}"
            )

    @functools.cached_property
    def struct(self) -> struct.Struct:
        return struct.Struct("=" + "".join(code for _, code in self.members))

    def offsets(self) -> list[tuple[str, int]]:
        """(member, byte offset) in order, as BTF reports them."""
        out, codes = [], "="
        for member, code in self.members:
            out.append((member, struct.calcsize(codes)))
            codes += code
        return out


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def _raw_ip(ip: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, ip)  # strict dotted quad, unlike inet_aton
    except OSError as exc:
        raise ValueError(f"not an IPv4 address: {ip!r}") from exc


def _raw_mac(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return raw


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _prefix(prefix: str) -> tuple[int, bytes]:
    """(length, network address bytes) of "a.b.c.d/n" (a bare address is /32).
    Host bits are cleared, as the trie ignores them anyway."""
    addr, slash, length_text = prefix.partition("/")
    length = int(length_text) if slash else 32
    if not 0 <= length <= 32:
        raise ValueError(f"bad IPv4 prefix length in {prefix!r}")
    value = int.from_bytes(_raw_ip(addr), "big") & (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    return length, value.to_bytes(4, "big")


def _network(prefix: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(prefix, strict=False)


# ---- struct twins ---------------------------------------------------------------

LXC_INFO = Layout(
    "lxc_info",
    (("ep_id", "I"), ("identity", "I"), ("ipv4", "4s"), ("flags", "I"), ("mac", "6s"),
     ("host_mac", "6s"), ("pad", "4s")),
    32,
)  # fmt: skip

DATAPATH_CONFIG = Layout(
    "datapath_config", (("flags", "I"), ("tunnel_ifindex", "I"), ("pad", "8s")), 16
)

FRAG_KEY = Layout(
    "ipv4_frag_key",
    (("saddr", "4s"), ("daddr", "4s"), ("id", "H"), ("proto", "B"), ("pad", "B")),
    12,
)
FRAG_PORTS = Layout("ipv4_frag_ports", (("sport", "H"), ("dport", "H")), 4)

# datapath_config.flags
CFG_HOST_ROUTING_BPF = 1 << 0
CFG_TUNNEL = 1 << 1


def lxc_flags(
    *,
    ingress_enforced: bool = False,
    egress_enforced: bool = False,
    ingress_audit: bool = False,
    egress_audit: bool = False,
) -> int:
    """``lxc_info.flags`` from the four switches."""
    return (
        (LXC_F_INGRESS_ENFORCED if ingress_enforced else 0)
        | (LXC_F_EGRESS_ENFORCED if egress_enforced else 0)
        | (LXC_F_INGRESS_AUDIT if ingress_audit else 0)
        | (LXC_F_EGRESS_AUDIT if egress_audit else 0)
    )


@dataclass(frozen=True)
class LxcInfo:
    """``axo_lxc`` value: one endpoint, keyed by its host veth's ifindex."""

    LAYOUT: ClassVar[Layout] = LXC_INFO

    ep_id: int
    identity: int
    ipv4: str
    flags: int = 0
    mac: str = "00:00:00:00:00:00"  # the pod's
    host_mac: str = "00:00:00:00:00:00"  # the host-side veth's

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(
            self.ep_id,
            self.identity,
            _raw_ip(self.ipv4),
            self.flags,
            _raw_mac(self.mac),
            _raw_mac(self.host_mac),
            bytes(4),
        )

    @classmethod
    def unpack(cls, raw: bytes) -> LxcInfo:
        ep_id, identity, ip, flags, mac, host_mac, _ = cls.LAYOUT.struct.unpack(raw)
        return cls(ep_id, identity, _ip(ip), flags, _mac_text(mac), _mac_text(host_mac))

    def enforced(self, direction: int) -> bool:
        bit = LXC_F_INGRESS_ENFORCED if direction == INGRESS else LXC_F_EGRESS_ENFORCED
        return bool(self.flags & bit)

    def audit(self, direction: int) -> bool:
        bit = LXC_F_INGRESS_AUDIT if direction == INGRESS else LXC_F_EGRESS_AUDIT
        return bool(self.flags & bit)


IPCACHE_KEY = Layout("ipcache_key", (("prefixlen", "I"), ("ip", "4s")), 8)
IPCACHE_VALUE = Layout(
    "ipcache_value", (("identity", "I"), ("tunnel_ip", "4s"), ("flags", "I")), 12
)


@dataclass(frozen=True)
class IPCacheKey:
    """``axo_ipcache`` key: an IPv4 prefix (``10.0.0.0/8``; a bare address is /32)."""

    LAYOUT: ClassVar[Layout] = IPCACHE_KEY

    prefix: str

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(*_prefix(self.prefix))

    @classmethod
    def unpack(cls, raw: bytes) -> IPCacheKey:
        prefixlen, ip = cls.LAYOUT.struct.unpack(raw)
        return cls(f"{_ip(ip)}/{prefixlen}")


@dataclass(frozen=True)
class IPCacheValue:
    LAYOUT: ClassVar[Layout] = IPCACHE_VALUE

    identity: int
    tunnel_ip: str = "0.0.0.0"
    flags: int = 0

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(self.identity, _raw_ip(self.tunnel_ip), self.flags)

    @classmethod
    def unpack(cls, raw: bytes) -> IPCacheValue:
        identity, tunnel, flags = cls.LAYOUT.struct.unpack(raw)
        return cls(identity, _ip(tunnel), flags)


POLICY_KEY = Layout(
    "policy_key", (("identity", "I"), ("ep_id", "H"), ("dir", "B"), ("pad", "B")), 8
)


@dataclass(frozen=True, order=True)
class PolicyKey:
    """``axo_policy`` key: (peer identity, endpoint, direction); identity 0 = any."""

    LAYOUT: ClassVar[Layout] = POLICY_KEY

    identity: int
    ep_id: int
    dir: int

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(self.identity, self.ep_id, self.dir, 0)

    @classmethod
    def unpack(cls, raw: bytes) -> PolicyKey:
        identity, ep_id, direction, _ = cls.LAYOUT.struct.unpack(raw)
        return cls(identity, ep_id, direction)


POLICY_CIDR_KEY = Layout(
    "policy_cidr_key",
    (("prefixlen", "I"), ("ep_id", "2s"), ("dir", "B"), ("pad", "B"), ("ip", "4s")),
    12,
)


@dataclass(frozen=True, order=True)
class PolicyCIDRKey:
    """``axo_policy_cidr`` key: a peer prefix of one endpoint and direction."""

    LAYOUT: ClassVar[Layout] = POLICY_CIDR_KEY

    ep_id: int
    dir: int
    prefix: str

    def pack(self) -> bytes:
        length, network = _prefix(self.prefix)
        return self.LAYOUT.struct.pack(
            32 + length, self.ep_id.to_bytes(2, "big"), self.dir, 0, network
        )

    @classmethod
    def unpack(cls, raw: bytes) -> PolicyCIDRKey:
        prefixlen, ep_id, direction, _, ip = cls.LAYOUT.struct.unpack(raw)
        return cls(int.from_bytes(ep_id, "big"), direction, f"{_ip(ip)}/{prefixlen - 32}")


PORTS_KEY = Layout(
    "ports_key",
    (("prefixlen", "I"), ("set_id", "4s"), ("proto", "B"), ("pad", "B"), ("port", "2s")),
    12,
)
PORTS_VALUE = Layout(
    "ports_value", (("verdict", "B"), ("flags", "B"), ("pad", "H"), ("cookie", "I")), 8
)


@dataclass(frozen=True, order=True)
class PortsKey:
    """``axo_policy_ports`` key: one block of one set (``prefixlen`` 32..64, see portsets)."""

    LAYOUT: ClassVar[Layout] = PORTS_KEY

    set_id: int
    prefixlen: int
    proto: int
    port: int

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(
            self.prefixlen, self.set_id.to_bytes(4, "big"), self.proto, 0,
            self.port.to_bytes(2, "big"),
        )  # fmt: skip

    @classmethod
    def unpack(cls, raw: bytes) -> PortsKey:
        prefixlen, set_id, proto, _, port = cls.LAYOUT.struct.unpack(raw)
        return cls(int.from_bytes(set_id, "big"), prefixlen, proto, int.from_bytes(port, "big"))


@dataclass(frozen=True)
class PortsValue:
    LAYOUT: ClassVar[Layout] = PORTS_VALUE

    verdict: int  # 1 allow, 2 deny
    flags: int = 0
    cookie: int = 0

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(self.verdict, self.flags, 0, self.cookie)

    @classmethod
    def unpack(cls, raw: bytes) -> PortsValue:
        verdict, flags, _, cookie = cls.LAYOUT.struct.unpack(raw)
        return cls(verdict, flags, cookie)


CT_KEY = Layout(
    "ct_key",
    (("saddr", "4s"), ("daddr", "4s"), ("sport", "2s"), ("dport", "2s"), ("proto", "B"),
     ("dir", "B"), ("pad", "H")),
    16,
)  # fmt: skip
CT_VALUE = Layout(
    "ct_value",
    (("created_ns", "Q"), ("last_seen_ns", "Q"), ("packets", "Q"), ("bytes", "Q"),
     ("src_identity", "I"), ("ep_id", "I"), ("tcp_flags_seen", "B"), ("closing", "B"),
     ("reply_flags_seen", "B"), ("reply_seen", "B"), ("pad", "4s")),
    48,
)  # fmt: skip


@dataclass(frozen=True, order=True)
class CtKey:
    """``axo_ct`` key: the original direction's tuple and the creating endpoint's dir."""

    LAYOUT: ClassVar[Layout] = CT_KEY

    saddr: str
    daddr: str
    sport: int
    dport: int
    proto: int
    dir: int

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(
            _raw_ip(self.saddr), _raw_ip(self.daddr), self.sport.to_bytes(2, "big"),
            self.dport.to_bytes(2, "big"), self.proto, self.dir, 0,
        )  # fmt: skip

    @classmethod
    def unpack(cls, raw: bytes) -> CtKey:
        saddr, daddr, sport, dport, proto, direction, _ = cls.LAYOUT.struct.unpack(raw)
        return cls(
            _ip(saddr), _ip(daddr), int.from_bytes(sport, "big"), int.from_bytes(dport, "big"),
            proto, direction,
        )  # fmt: skip

    def reversed(self) -> CtKey:
        """The key a reply's own tuple would have (not how replies are stored)."""
        return CtKey(self.daddr, self.saddr, self.dport, self.sport, self.proto, self.dir ^ 1)


@dataclass(frozen=True)
class CtValue:
    LAYOUT: ClassVar[Layout] = CT_VALUE

    created_ns: int
    last_seen_ns: int
    packets: int
    bytes: int
    src_identity: int
    ep_id: int
    tcp_flags_seen: int = 0
    closing: int = 0
    reply_flags_seen: int = 0
    reply_seen: int = 0

    def pack(self) -> builtins.bytes:
        return self.LAYOUT.struct.pack(
            self.created_ns, self.last_seen_ns, self.packets, self.bytes, self.src_identity,
            self.ep_id, self.tcp_flags_seen, self.closing, self.reply_flags_seen,
            self.reply_seen, bytes(4),
        )  # fmt: skip

    @classmethod
    def unpack(cls, raw: builtins.bytes) -> CtValue:
        return cls(*cls.LAYOUT.struct.unpack(raw)[:10])


METRIC = Layout("metric", (("packets", "Q"), ("bytes", "Q")), 16)


@dataclass(frozen=True)
class Metric:
    LAYOUT: ClassVar[Layout] = METRIC

    packets: int = 0
    bytes: int = 0

    def __add__(self, other: Metric) -> Metric:
        return Metric(self.packets + other.packets, self.bytes + other.bytes)


# Every struct of docs/datapath.md (struct event's layout is in datapath/events.py).
LAYOUTS: tuple[Layout, ...] = (
    LXC_INFO, IPCACHE_KEY, IPCACHE_VALUE, POLICY_KEY, POLICY_CIDR_KEY, PORTS_KEY,
    PORTS_VALUE, CT_KEY, CT_VALUE, METRIC, DATAPATH_CONFIG, FRAG_KEY, FRAG_PORTS,
)  # fmt: skip


# ---- maps ---------------------------------------------------------------------------

_M = TypeVar("_M", bound="_PinnedMap")
_U32 = struct.Struct("=I")


class _PinnedMap:
    NAME: ClassVar[str]

    def __init__(self, raw: BpfMap) -> None:
        self.raw = raw

    @classmethod
    def open(cls: type[_M], pin_dir: Path) -> _M:
        """Open ``<pin_dir>/<NAME>`` (the map must have been pinned by a load)."""
        return cls(BpfMap.open_pinned(pin_dir / cls.NAME))

    def close(self) -> None:
        self.raw.close()

    def __enter__(self: _M) -> _M:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clear(self) -> int:
        return self.raw.clear()


class LxcMap(_PinnedMap):
    NAME = "axo_lxc"

    def set(self, ifindex: int, info: LxcInfo) -> None:
        self.raw.update(_U32.pack(ifindex), info.pack())

    def get(self, ifindex: int) -> LxcInfo | None:
        raw = self.raw.lookup(_U32.pack(ifindex))
        return LxcInfo.unpack(raw) if raw is not None else None

    def delete(self, ifindex: int) -> bool:
        return self.raw.delete(_U32.pack(ifindex))

    def items(self) -> list[tuple[int, LxcInfo]]:
        return sorted((_U32.unpack(k)[0], LxcInfo.unpack(v)) for k, v in self.raw.items())


class LxcIPMap(_PinnedMap):
    """``axo_lxc_ip``: pod IPv4 -> its host veth's ifindex (local delivery)."""

    NAME = "axo_lxc_ip"

    def set(self, ip: str, ifindex: int) -> None:
        self.raw.update(_raw_ip(ip), _U32.pack(ifindex))

    def get(self, ip: str) -> int | None:
        raw = self.raw.lookup(_raw_ip(ip))
        return _U32.unpack(raw)[0] if raw is not None else None

    def delete(self, ip: str) -> bool:
        return self.raw.delete(_raw_ip(ip))

    def items(self) -> list[tuple[str, int]]:
        return sorted((_ip(k), _U32.unpack(v)[0]) for k, v in self.raw.items())


@dataclass(frozen=True)
class DatapathConfig:
    """``axo_config[0]``: how packets leave the endpoints (docs/datapath.md, "Routing")."""

    LAYOUT: ClassVar[Layout] = DATAPATH_CONFIG

    flags: int = 0  # CFG_*
    tunnel_ifindex: int = 0

    def pack(self) -> bytes:
        return self.LAYOUT.struct.pack(self.flags, self.tunnel_ifindex, bytes(8))

    @classmethod
    def unpack(cls, raw: bytes) -> DatapathConfig:
        flags, tunnel_ifindex, _ = cls.LAYOUT.struct.unpack(raw)
        return cls(flags, tunnel_ifindex)


class ConfigMap(_PinnedMap):
    NAME = "axo_config"

    def set(self, config: DatapathConfig) -> None:
        self.raw.update(_U32.pack(0), config.pack())

    def get(self) -> DatapathConfig:
        raw = self.raw.lookup(_U32.pack(0))
        return DatapathConfig.unpack(raw) if raw is not None else DatapathConfig()


class IPCacheMap(_PinnedMap):
    """``axo_ipcache``: prefix -> identity. LPM tries have no exact-match read,
    so there is no ``get``: ``lookup`` answers as the datapath does."""

    NAME = "axo_ipcache"

    def set(self, prefix: str, value: IPCacheValue) -> None:
        self.raw.update(IPCacheKey(prefix).pack(), value.pack())

    def lookup(self, ip: str) -> IPCacheValue | None:
        """What the datapath sees for ip: the longest matching prefix's value."""
        raw = self.raw.lookup(IPCacheKey(f"{ip}/32").pack())
        return IPCacheValue.unpack(raw) if raw is not None else None

    def delete(self, prefix: str) -> bool:
        return self.raw.delete(IPCacheKey(prefix).pack())

    def items(self) -> list[tuple[str, IPCacheValue]]:
        return sorted(
            ((IPCacheKey.unpack(k).prefix, IPCacheValue.unpack(v)) for k, v in self.raw.items()),
            key=lambda kv: (_network(kv[0]).network_address, _network(kv[0]).prefixlen),
        )


class PolicyMap(_PinnedMap):
    """``axo_policy``: (identity, endpoint, direction) -> port set id."""

    NAME = "axo_policy"

    def set(self, key: PolicyKey, set_id: int) -> None:
        self.raw.update(key.pack(), _U32.pack(set_id))

    def set_many(self, entries: Iterable[tuple[PolicyKey, int]]) -> None:
        """Write many entries in one ``MAP_UPDATE_BATCH``."""
        self.raw.update_batch([(k.pack(), _U32.pack(v)) for k, v in entries], BPF_ANY)

    def get(self, key: PolicyKey) -> int | None:
        raw = self.raw.lookup(key.pack())
        return _U32.unpack(raw)[0] if raw is not None else None

    def delete(self, key: PolicyKey) -> bool:
        return self.raw.delete(key.pack())

    def items(self) -> list[tuple[PolicyKey, int]]:
        return sorted((PolicyKey.unpack(k), _U32.unpack(v)[0]) for k, v in self.raw.items())


class PolicyCIDRMap(_PinnedMap):
    """``axo_policy_cidr``: (endpoint, direction, peer prefix) -> port set id."""

    NAME = "axo_policy_cidr"

    def set(self, key: PolicyCIDRKey, set_id: int) -> None:
        self.raw.update(key.pack(), _U32.pack(set_id))

    def lookup(self, ep_id: int, direction: int, ip: str) -> int | None:
        """The set the datapath finds for a peer address (longest prefix)."""
        raw = self.raw.lookup(PolicyCIDRKey(ep_id, direction, f"{ip}/32").pack())
        return _U32.unpack(raw)[0] if raw is not None else None

    def delete(self, key: PolicyCIDRKey) -> bool:
        return self.raw.delete(key.pack())

    def items(self) -> list[tuple[PolicyCIDRKey, int]]:
        return sorted((PolicyCIDRKey.unpack(k), _U32.unpack(v)[0]) for k, v in self.raw.items())


class PortsMap(_PinnedMap):
    """``axo_policy_ports``: the LPM blocks of every port set."""

    NAME = "axo_policy_ports"

    def set(self, key: PortsKey, value: PortsValue) -> None:
        self.raw.update(key.pack(), value.pack())

    def delete(self, key: PortsKey) -> bool:
        return self.raw.delete(key.pack())

    def write_set(self, set_id: int, entries: Sequence[PortsEntry], cookie: int = 0) -> None:
        """Add a set's entries (from ``portsets.port_entries``). Entries of a set id
        that are not in ``entries`` are left alone: write new sets under new ids."""
        for e in entries:
            check_entry(e)
            self.set(
                PortsKey(set_id, e.prefixlen, e.proto, e.port), PortsValue(e.verdict, 0, cookie)
            )

    def delete_set(self, set_id: int) -> int:
        """Remove every entry of a set (walks the trie); returns how many."""
        doomed = [k for k in self.raw.iter_keys() if PortsKey.unpack(k).set_id == set_id]
        return sum(self.raw.delete(k) for k in doomed)

    def lookup(self, set_id: int, proto: int, port: int) -> PortsValue | None:
        """What the datapath finds for (proto, port) in a set."""
        raw = self.raw.lookup(PortsKey(set_id, 64, proto, port).pack())
        return PortsValue.unpack(raw) if raw is not None else None

    def entries(self, set_id: int) -> list[PortsEntry]:
        out = []
        for k, v in self.raw.items():
            key = PortsKey.unpack(k)
            if key.set_id == set_id:
                out.append(
                    PortsEntry(key.prefixlen, key.proto, key.port, PortsValue.unpack(v).verdict)
                )
        return sorted(out)

    def verdicts(self, set_id: int) -> PortVerdicts:
        """A set's contents as intervals of the protocol/port line (for display)."""
        return port_verdicts(self.entries(set_id))

    def items(self) -> list[tuple[PortsKey, PortsValue]]:
        return sorted((PortsKey.unpack(k), PortsValue.unpack(v)) for k, v in self.raw.items())


class CTMap(_PinnedMap):
    NAME = "axo_ct"

    def get(self, key: CtKey) -> CtValue | None:
        raw = self.raw.lookup(key.pack())
        return CtValue.unpack(raw) if raw is not None else None

    def items(self) -> list[tuple[CtKey, CtValue]]:
        return sorted(
            ((CtKey.unpack(k), CtValue.unpack(v)) for k, v in self.raw.items()),
            key=lambda kv: kv[0],
        )

    def delete(self, key: CtKey) -> bool:
        return self.raw.delete(key.pack())

    def flush(self) -> int:
        """Delete every entry; returns how many. Connections then need policy again."""
        keys = [k for k, _ in self.raw.items()]
        try:
            self.raw.delete_batch(keys)
        except OSError:
            # An entry expired or was evicted between the walk and the delete.
            return sum(self.raw.delete(k) for k in keys) + self.raw.clear()
        return len(keys)


class NatMap(_PinnedMap):
    """``axo_lb_nat`` (bpf/lib/nodeport.h): north-south NAT entries, pinned by bpf_host.o."""

    NAME = NAT_MAP

    def get(self, key: NatKey) -> Nat | None:
        raw = self.raw.lookup(key.pack())
        return Nat.unpack(raw) if raw is not None else None

    def items(self) -> list[tuple[NatKey, Nat]]:
        return [(NatKey.unpack(k), Nat.unpack(v)) for k, v in self.raw.lookup_batch()]

    def set(self, key: NatKey, value: Nat) -> None:
        self.raw.update(key.pack(), value.pack())

    def delete(self, key: NatKey) -> bool:
        return self.raw.delete(key.pack())


class MetricsMap(_PinnedMap):
    """``axo_metrics``: per-CPU (packets, bytes) per drop reason; 0 = lost events."""

    NAME = "axo_metrics"
    RING_FULL = 0
    # Forwarding counters below the drop reasons (bpf/lib/forward.h METRIC_*).
    REDIRECT_PEER = 1
    TUNNEL_TX = 2
    TUNNEL_RX = 3
    REDIRECT_NEIGH = 4
    FORWARDING = {1: "redirect_peer", 2: "tunnel_tx", 3: "tunnel_rx", 4: "redirect_neigh"}

    def read(self) -> dict[int, Metric]:
        """Counters summed over CPUs, only the non-zero ones."""
        out: dict[int, Metric] = {}
        slot = (METRIC.size + 7) // 8 * 8
        for k, v in self.raw.items():
            total = Metric()
            for offset in range(0, len(v), slot):
                total = total + Metric(*METRIC.struct.unpack_from(v, offset))
            if total.packets or total.bytes:
                out[_U32.unpack(k)[0]] = total
        return out

    def lost_events(self) -> int:
        """Events the ring buffer had no room for."""
        return self.read().get(self.RING_FULL, Metric()).packets

    def reset(self) -> None:
        zero = bytes(self.raw.value_bytes)
        for k in range(self.raw.max_entries):
            self.raw.update(_U32.pack(k), zero)
