"""Python twins of the service load-balancing map entries (``bpf/lib/lb.h``).

Pure packing and unpacking: addresses and ports in network byte order,
everything else host order, every padding byte explicit, as in the C.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "AFFINITY_KEY",
    "AFFINITY_VALUE",
    "BACKEND",
    "KIND_FLAGS",
    "LB_BE_LOCAL",
    "LB_BE_TERMINATING",
    "LB_F_AFFINITY",
    "LB_F_EXTERNAL_IP",
    "LB_F_LOADBALANCER",
    "LB_F_MAGLEV",
    "LB_F_NODEPORT",
    "LB_F_TWO_SCOPES",
    "LB_MAGLEV_MAX",
    "LB_MAP_NAMES",
    "LB_SCOPE_EXT",
    "LB_SCOPE_INT",
    "LB_XLATE_FWD",
    "LB_XLATE_REV",
    "NAT_F_CLOSING",
    "NAT_F_DSR",
    "NAT_F_EGRESS",
    "NAT_F_ESTABLISHED",
    "NAT_F_INGRESS",
    "NAT_F_REDIRECT",
    "NAT_KEY",
    "NAT_MAP",
    "NAT_VALUE",
    "PROTO_NAMES",
    "PROTO_NUMBERS",
    "REVNAT_KEY",
    "REVNAT_VALUE",
    "SLOT_KEY",
    "SVC_KEY",
    "SVC_VALUE",
    "XLATE_KEY",
    "XLATE_MAP",
    "XLATE_VALUE",
    "Backend",
    "Nat",
    "NatKey",
    "SvcKey",
    "SvcValue",
    "Xlate",
    "XlateKey",
    "kind_of",
    "pack_maglev",
    "pack_slot_key",
    "unpack_maglev",
    "unpack_slot_key",
]

LB_F_MAGLEV = 1 << 0
LB_F_AFFINITY = 1 << 1
LB_F_EXTERNAL_IP = 1 << 2
LB_F_LOADBALANCER = 1 << 3
LB_F_NODEPORT = 1 << 4
LB_F_TWO_SCOPES = 1 << 5  # externalTrafficPolicy: Local; the socket LB uses the internal twin
LB_SCOPE_EXT = 0
LB_SCOPE_INT = 1
# The frontend kind each flag marks (none of them: ClusterIP).
KIND_FLAGS = {
    "ExternalIPs": LB_F_EXTERNAL_IP,
    "LoadBalancer": LB_F_LOADBALANCER,
    "NodePort": LB_F_NODEPORT,
}


def kind_of(flags: int) -> str:
    return next((k for k, f in KIND_FLAGS.items() if flags & f), "ClusterIP")


LB_BE_TERMINATING = 1 << 0
LB_BE_LOCAL = 1 << 1
LB_MAGLEV_MAX = 16381
PROTO_NUMBERS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}

SVC_KEY = struct.Struct("=4sHBB")  # vip, dport (NBO), proto, scope
SVC_VALUE = struct.Struct("=IHHII")  # svc_id, count, flags, affinity_timeout, maglev_size
SLOT_KEY = struct.Struct("=II")
BACKEND = struct.Struct("=4sHBBI")  # ip, port (NBO), proto, flags, svc_id
AFFINITY_KEY = struct.Struct("=QII")
AFFINITY_VALUE = struct.Struct("=QII")
REVNAT_KEY = struct.Struct("=Q4sHxx")
REVNAT_VALUE = struct.Struct("=4sHxx")
MAGLEV_VALUE = struct.Struct(f"={LB_MAGLEV_MAX}I")
# axo_lb_xlate (bpf/lib/lbxlate.h, the endpoint's per-packet SCTP translation):
# saddr, daddr, sport, dport (NBO), proto -> addr (NBO), backend id, dir.
# Only the endpoint objects define it, so it is not in LB_MAP_NAMES.
XLATE_MAP = "axo_lb_xlate"
# saddr, daddr, sport, dport (NBO), proto: the 5-tuple key of axo_lb_xlate and axo_lb_nat
TUPLE_KEY = struct.Struct("=4s4sHHBxxx")
XLATE_KEY = TUPLE_KEY
XLATE_VALUE = struct.Struct("=4sIBxxx")
# axo_lb_nat (bpf/lib/nodeport.h): north-south translations, pinned by bpf_host.o.
NAT_MAP = "axo_lb_nat"
NAT_KEY = TUPLE_KEY
NAT_VALUE = struct.Struct("=4s4sHHII")  # saddr, daddr, sport, dport (NBO), flags, last_seen
NAT_F_INGRESS = 1 << 0
NAT_F_EGRESS = 1 << 1
NAT_F_REDIRECT = 1 << 2
NAT_F_DSR = 1 << 3
NAT_F_ESTABLISHED = 1 << 4  # a TCP segment without SYN passed
NAT_F_CLOSING = 1 << 5  # a TCP FIN or RST passed

LB_XLATE_FWD = 1  # client -> frontend: the destination becomes the backend
LB_XLATE_REV = 2  # backend -> client: the source becomes the frontend

# map name -> (key size, value size): checked against pins before adopting them.
LB_MAP_NAMES = {
    "axo_lb_svc": (SVC_KEY.size, SVC_VALUE.size),
    "axo_lb_slot": (SLOT_KEY.size, 4),
    "axo_lb_backend": (4, BACKEND.size),
    "axo_lb_maglev": (4, MAGLEV_VALUE.size),
    "axo_lb_affinity": (AFFINITY_KEY.size, AFFINITY_VALUE.size),
    "axo_lb_revnat": (REVNAT_KEY.size, REVNAT_VALUE.size),
}


def _nport(port: int) -> int:
    """A port as the C's __u16 in network order, read back as host order here."""
    return int.from_bytes(port.to_bytes(2, "big"), "little")


def _hport(raw: int) -> int:
    return int.from_bytes(raw.to_bytes(2, "little"), "big")


@dataclass(frozen=True, order=True)
class SvcKey:
    vip: str
    port: int
    proto: int
    scope: int = LB_SCOPE_EXT

    def pack(self) -> bytes:
        return SVC_KEY.pack(socket.inet_aton(self.vip), _nport(self.port), self.proto, self.scope)

    @classmethod
    def unpack(cls, raw: bytes) -> SvcKey:
        vip, port, proto, scope = SVC_KEY.unpack(raw)
        return cls(socket.inet_ntoa(vip), _hport(port), proto, scope)


@dataclass(frozen=True)
class SvcValue:
    svc_id: int
    count: int
    flags: int = 0
    affinity_timeout: int = 0
    maglev_size: int = 0

    def pack(self) -> bytes:
        return SVC_VALUE.pack(
            self.svc_id, self.count, self.flags, self.affinity_timeout, self.maglev_size
        )

    @classmethod
    def unpack(cls, raw: bytes) -> SvcValue:
        return cls(*SVC_VALUE.unpack(raw))


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int
    proto: int
    flags: int
    svc_id: int

    def pack(self) -> bytes:
        return BACKEND.pack(
            socket.inet_aton(self.ip), _nport(self.port), self.proto, self.flags, self.svc_id
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Backend:
        ip, port, proto, flags, svc_id = BACKEND.unpack(raw)
        return cls(socket.inet_ntoa(ip), _hport(port), proto, flags, svc_id)


def pack_slot_key(svc_id: int, slot: int) -> bytes:
    return SLOT_KEY.pack(svc_id, slot)


def unpack_slot_key(raw: bytes) -> tuple[int, int]:
    svc_id, slot = SLOT_KEY.unpack(raw)
    return int(svc_id), int(slot)


def pack_maglev(table: tuple[int, ...]) -> bytes:
    """A service's table, zero-filled to the map's fixed value size."""
    if len(table) > LB_MAGLEV_MAX:
        raise ValueError(f"a Maglev table holds at most {LB_MAGLEV_MAX} entries")
    return MAGLEV_VALUE.pack(*table, *([0] * (LB_MAGLEV_MAX - len(table))))


def unpack_maglev(raw: bytes, size: int) -> tuple[int, ...]:
    return tuple(MAGLEV_VALUE.unpack(raw)[:size])


@dataclass(frozen=True, order=True)
class TupleKey:
    """A packet's 5-tuple as ``axo_lb_xlate`` and ``axo_lb_nat`` key it."""

    saddr: str
    daddr: str
    sport: int
    dport: int
    proto: int

    def pack(self) -> bytes:
        return TUPLE_KEY.pack(
            socket.inet_aton(self.saddr),
            socket.inet_aton(self.daddr),
            _nport(self.sport),
            _nport(self.dport),
            self.proto,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> TupleKey:
        saddr, daddr, sport, dport, proto = TUPLE_KEY.unpack(raw)
        return cls(
            socket.inet_ntoa(saddr), socket.inet_ntoa(daddr), _hport(sport), _hport(dport), proto
        )


XlateKey = TupleKey
NatKey = TupleKey


@dataclass(frozen=True)
class Xlate:
    """What one address of the keyed packet becomes (``LB_XLATE_*`` says which)."""

    addr: str
    backend_id: int
    dir: int

    def pack(self) -> bytes:
        return XLATE_VALUE.pack(socket.inet_aton(self.addr), self.backend_id, self.dir)

    @classmethod
    def unpack(cls, raw: bytes) -> Xlate:
        addr, backend_id, direction = XLATE_VALUE.unpack(raw)
        return cls(socket.inet_ntoa(addr), backend_id, direction)


@dataclass(frozen=True)
class Nat:
    """What the keyed packet's addresses become (``NAT_F_*`` flags), and when the
    flow was last seen (seconds of CLOCK_MONOTONIC)."""

    saddr: str
    daddr: str
    sport: int
    dport: int
    flags: int
    last_seen: int

    def pack(self) -> bytes:
        return NAT_VALUE.pack(
            socket.inet_aton(self.saddr),
            socket.inet_aton(self.daddr),
            _nport(self.sport),
            _nport(self.dport),
            self.flags,
            self.last_seen,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Nat:
        saddr, daddr, sport, dport, flags, last_seen = NAT_VALUE.unpack(raw)
        return cls(
            socket.inet_ntoa(saddr),
            socket.inet_ntoa(daddr),
            _hport(sport),
            _hport(dport),
            flags,
            last_seen,
        )

    def partner(self, key: NatKey) -> NatKey:
        """The key of the other entry of the pair (forward <-> reverse)."""
        return NatKey(self.daddr, self.saddr, self.dport, self.sport, key.proto)
