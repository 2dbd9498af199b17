"""Decoding datapath events: the 64-byte ``struct event`` records of ``axo_events`` (pure).

One record per DROP, POLICY_VERDICT or TRACE (docs/datapath.md, "Events and
aggregation"). ``decode`` turns one record into a frozen :class:`DatapathEvent`
with addresses as dotted strings and ports in host order; ``decode_many``
walks a buffer of back-to-back records. No I/O here: the ring buffer reader
(``linux/ringbuf.py``) and tests feed bytes in.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from axoneme.datapath import reasons

__all__ = [
    "CT_ESTABLISHED",
    "CT_NEW",
    "CT_RELATED",
    "CT_REPLY",
    "EVENT_DROP",
    "EVENT_POLICY_VERDICT",
    "EVENT_SIZE",
    "EVENT_TRACE",
    "VERDICT_AUDIT",
    "VERDICT_DROPPED",
    "VERDICT_FORWARDED",
    "DatapathEvent",
    "decode",
    "decode_many",
    "encode",
]

EVENT_DROP = 1
EVENT_POLICY_VERDICT = 2
EVENT_TRACE = 3
EVENT_TYPES = {EVENT_DROP: "DROP", EVENT_POLICY_VERDICT: "POLICY_VERDICT", EVENT_TRACE: "TRACE"}

VERDICT_FORWARDED = 1  # Hubble's Verdict numbers
VERDICT_DROPPED = 2
VERDICT_AUDIT = 4
VERDICTS = {VERDICT_FORWARDED: "FORWARDED", VERDICT_DROPPED: "DROPPED", VERDICT_AUDIT: "AUDIT"}

CT_NEW = 0
CT_ESTABLISHED = 1
CT_REPLY = 2
CT_RELATED = 3  # an ICMP error about a tracked connection
CT_STATES = {
    CT_NEW: "new",
    CT_ESTABLISHED: "established",
    CT_REPLY: "reply",
    CT_RELATED: "related",
}

DIRECTIONS = {0: "ingress", 1: "egress"}

# struct event: (C member, struct code). Host order except the NBO addresses
# and ports, taken as raw bytes / swapped below. Checked against the BTF of
# bpf/build/bpf_lxc.o by tests/privileged/test_privileged_datapath_layout.py.
EVENT_MEMBERS: tuple[tuple[str, str], ...] = (
    ("ts_ns", "Q"),
    ("type", "B"),
    ("verdict", "B"),
    ("dir", "B"),
    ("proto", "B"),
    ("ep_id", "H"),
    ("reason", "H"),
    ("src_identity", "I"),
    ("dst_identity", "I"),
    ("saddr", "4s"),
    ("daddr", "4s"),
    ("sport", "2s"),
    ("dport", "2s"),
    ("tcp_flags", "B"),
    ("ct_state", "B"),
    ("pad", "H"),
    ("ifindex", "I"),
    ("len", "I"),
    ("cookie", "I"),
    ("pad2", "12s"),
)
_EVENT = struct.Struct("=" + "".join(code for _, code in EVENT_MEMBERS))
EVENT_SIZE = _EVENT.size
assert EVENT_SIZE == 64, EVENT_SIZE


@dataclass(frozen=True)
class DatapathEvent:
    """One datapath event. Field names follow ``struct event``; ``saddr``/``daddr``
    are dotted quads and ports are host-order integers. ``identity`` fields are
    packet-based: ``src_identity`` is the identity of the packet's source."""

    C_STRUCT: ClassVar[str] = "event"

    ts_ns: int
    type: int
    verdict: int
    dir: int
    proto: int
    ep_id: int
    reason: int
    src_identity: int
    dst_identity: int
    saddr: str
    daddr: str
    sport: int
    dport: int
    tcp_flags: int
    ct_state: int
    ifindex: int
    len: int
    cookie: int

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.type, f"UNKNOWN_{self.type}")

    @property
    def verdict_name(self) -> str:
        return VERDICTS.get(self.verdict, f"UNKNOWN_{self.verdict}")

    @property
    def direction(self) -> str:
        return DIRECTIONS.get(self.dir, f"UNKNOWN_{self.dir}")

    @property
    def ct_state_name(self) -> str:
        return CT_STATES.get(self.ct_state, f"UNKNOWN_{self.ct_state}")

    @property
    def reason_name(self) -> str:
        """The drop reason's name, "" when the event carries none."""
        return reasons.name(self.reason) if self.reason else ""

    def summary(self) -> str:
        """One line, ``cilium monitor`` style."""
        what = f"{self.type_name} {self.verdict_name}"
        if self.reason:
            what += f" ({reasons.describe(self.reason)})"
        return (
            f"{what} {self.direction} ep {self.ep_id} "
            f"{self.saddr}:{self.sport} -> {self.daddr}:{self.dport} proto {self.proto} "
            f"identity {self.src_identity}->{self.dst_identity} ct {self.ct_state_name}"
        )


def decode(raw: bytes | bytearray | memoryview, offset: int = 0) -> DatapathEvent:
    """Decode the record at ``offset`` (``EVENT_SIZE`` bytes)."""
    if len(raw) - offset < EVENT_SIZE:
        raise ValueError(f"event record needs {EVENT_SIZE} bytes, got {len(raw) - offset}")
    (
        ts_ns, type_, verdict, dir_, proto, ep_id, reason, src_id, dst_id,
        saddr, daddr, sport, dport, tcp_flags, ct_state, _pad, ifindex, length, cookie, _pad2,
    ) = _EVENT.unpack_from(raw, offset)  # fmt: skip
    return DatapathEvent(
        ts_ns=ts_ns,
        type=type_,
        verdict=verdict,
        dir=dir_,
        proto=proto,
        ep_id=ep_id,
        reason=reason,
        src_identity=src_id,
        dst_identity=dst_id,
        saddr=socket.inet_ntoa(saddr),
        daddr=socket.inet_ntoa(daddr),
        sport=int.from_bytes(sport, "big"),
        dport=int.from_bytes(dport, "big"),
        tcp_flags=tcp_flags,
        ct_state=ct_state,
        ifindex=ifindex,
        len=length,
        cookie=cookie,
    )


def decode_many(raw: bytes | bytearray | memoryview) -> Iterator[DatapathEvent]:
    """Decode back-to-back records (a trailing partial record is an error)."""
    if len(raw) % EVENT_SIZE:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {EVENT_SIZE}-byte events")
    for offset in range(0, len(raw), EVENT_SIZE):
        yield decode(raw, offset)


def encode(event: DatapathEvent) -> bytes:
    """The record for an event (for tests and the in-memory datapath twin)."""
    return _EVENT.pack(
        event.ts_ns, event.type, event.verdict, event.dir, event.proto, event.ep_id,
        event.reason, event.src_identity, event.dst_identity,
        socket.inet_aton(event.saddr), socket.inet_aton(event.daddr),
        event.sport.to_bytes(2, "big"), event.dport.to_bytes(2, "big"),
        event.tcp_flags, event.ct_state, 0, event.ifindex, event.len, event.cookie, bytes(12),
    )  # fmt: skip
