"""Sets of points on the 24-bit protocol/port line, as sorted disjoint intervals.

A point is ``(protocol << 16) | port``; an interval is an inclusive ``(lo, hi)``
pair. Every function returns the canonical form: sorted, disjoint and
non-adjacent (``(1, 2), (3, 4)`` becomes ``(1, 4)``), so two sets are equal
exactly when their tuples are equal. All functions are pure.

``PortProtocol`` → intervals (cilium-semantics.md §2.4):

- protocol ``TCP``/``UDP``/``SCTP``: that protocol's ``[port, end_port]``;
  port 0 = every port of the protocol;
- protocol ``ANY``: the same port range for each of TCP, UDP and SCTP
  (ICMP and other protocols are *not* included);
- a rule with no ports at all is the whole line ``[0, 0xFFFFFF]``: every
  protocol (ICMP included) and every port (``from_ports(())``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from axoneme.policy.types import PROTO_NUMBERS, Interval, PortProtocol

LINE_MAX = 0xFFFFFF
PORT_MAX = 0xFFFF
FULL: tuple[Interval, ...] = ((0, LINE_MAX),)
EMPTY: tuple[Interval, ...] = ()

# Flow protocols by name (the datapath parses ports only for TCP/UDP/SCTP;
# every other protocol is looked up with port 0).
PROTOCOL_NUMBERS: dict[str, int] = {
    **PROTO_NUMBERS,
    "ICMP": 1,
    "IGMP": 2,
    "IPIP": 4,
    "GRE": 47,
    "ESP": 50,
    "AH": 51,
    "ICMPV6": 58,
    "VRRP": 112,
}
PROTOCOL_NAMES: dict[int, str] = {number: name for name, number in PROTOCOL_NUMBERS.items()}
PROTOCOL_NAMES[58] = "ICMPv6"
L4_PROTOCOLS = ("TCP", "UDP", "SCTP")


def protocol_number(protocol: str | int) -> int:
    """``"TCP"`` → 6; also accepts a number or a numeric string (0..255)."""
    if isinstance(protocol, int):
        number = protocol
    elif protocol.upper() in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[protocol.upper()]
    elif protocol.isdigit():
        number = int(protocol)
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    if not 0 <= number <= 0xFF:
        raise ValueError(f"protocol number {number} out of range 0..255")
    return number


def point(protocol: str | int, port: int) -> int:
    if not 0 <= port <= PORT_MAX:
        raise ValueError(f"port {port} out of range 0..65535")
    return (protocol_number(protocol) << 16) | port


def normalize(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sort, validate and merge overlapping or adjacent intervals."""
    items = sorted(intervals)
    merged: list[Interval] = []
    for lo, hi in items:
        if not 0 <= lo <= hi <= LINE_MAX:
            raise ValueError(f"bad interval ({lo}, {hi}) on the protocol/port line")
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def union(*sets: Iterable[Interval]) -> tuple[Interval, ...]:
    return normalize(interval for s in sets for interval in s)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> tuple[Interval, ...]:
    """Both arguments canonical (as every function here returns them)."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> tuple[Interval, ...]:
    """Points of ``a`` not in ``b``; both canonical."""
    out: list[Interval] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def contains(intervals: Sequence[Interval], value: int) -> bool:
    lo_i, hi_i = 0, len(intervals)
    while lo_i < hi_i:  # binary search for the last interval starting at or before value
        mid = (lo_i + hi_i) // 2
        if intervals[mid][0] <= value:
            lo_i = mid + 1
        else:
            hi_i = mid
    return lo_i > 0 and intervals[lo_i - 1][1] >= value


def size(intervals: Sequence[Interval]) -> int:
    return sum(hi - lo + 1 for lo, hi in intervals)


def port_range(protocol: str, lo: int, hi: int) -> tuple[Interval, ...]:
    """``[lo, hi]`` of one protocol, or of TCP, UDP and SCTP for ``ANY``."""
    if not 0 <= lo <= hi <= PORT_MAX:
        raise ValueError(f"bad port range {lo}-{hi}")
    names = L4_PROTOCOLS if protocol == "ANY" else (protocol,)
    return normalize(
        ((PROTO_NUMBERS[name] << 16) | lo, (PROTO_NUMBERS[name] << 16) | hi) for name in names
    )


def from_port_protocol(pp: PortProtocol) -> tuple[Interval, ...]:
    """A numeric ``PortProtocol``; a named one must be resolved first (ValueError)."""
    if pp.name:
        raise ValueError(f"named port {pp.name!r} must be resolved to numbers first")
    if pp.port == 0:
        return port_range(pp.protocol, 0, PORT_MAX)
    return port_range(pp.protocol, pp.port, max(pp.port, pp.end_port))


def from_ports(ports: Sequence[PortProtocol]) -> tuple[Interval, ...]:
    """The numeric ports of a rule; no ports at all = the whole line."""
    if not ports:
        return FULL
    return union(*(from_port_protocol(pp) for pp in ports))


def format_intervals(intervals: Sequence[Interval]) -> list[str]:
    """Human form: ``*`` (everything), ``TCP/*``, ``UDP/53``, ``TCP/80-90``, ``proto-1/*``."""
    out: list[str] = []
    for lo, hi in intervals:
        if (lo, hi) == FULL[0]:
            out.append("*")
            continue
        p_lo, p_hi = lo >> 16, hi >> 16
        for proto in range(p_lo, p_hi + 1):
            start = lo & PORT_MAX if proto == p_lo else 0
            end = hi & PORT_MAX if proto == p_hi else PORT_MAX
            name = PROTOCOL_NAMES.get(proto, f"proto-{proto}")
            if start == 0 and end == PORT_MAX:
                out.append(f"{name}/*")
            elif start == end:
                out.append(f"{name}/{start}")
            else:
                out.append(f"{name}/{start}-{end}")
    return out
