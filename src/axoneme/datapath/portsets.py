"""Port sets as LPM blocks: ``PortVerdicts`` <-> ``axo_policy_ports`` entries (pure).

The policy model describes allowed and denied traffic of one peer key as
disjoint intervals of the 24-bit protocol/port line ``(proto << 16) | port``
(``policy/types.py``). The datapath stores each interval as prefix-aligned
blocks in an LPM trie keyed ``set_id(32) proto(8) pad(8) port(16)``
(``struct ports_key``, docs/datapath.md). A block of the line covering its
top ``n`` bits (0..24) becomes an entry with map prefix length:

- ``n == 0`` (every protocol and port): 32, the set id alone;
- ``1 <= n <= 7`` (a power-of-two run of whole protocols): ``32 + n``;
- ``n == 8`` (one protocol, every port): 48, the canonical form (the pad
  byte is always 0, so 40 would match the same packets);
- ``9 <= n <= 24`` (ports of one protocol): ``40 + n``, past the pad byte.

Because the intervals are disjoint, every point of the line lies in at most
one block, so the trie's longest match is the only match.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from axoneme.policy.types import Interval, PortVerdicts

__all__ = [
    "ALLOW",
    "DENY",
    "LINE_MAX",
    "PortsEntry",
    "check_entry",
    "entry_interval",
    "line_point",
    "match",
    "port_entries",
    "port_verdicts",
]

ALLOW = 1  # ports_value.verdict
DENY = 2
LINE_BITS = 24
LINE_MAX = (1 << LINE_BITS) - 1


class PortsEntry(NamedTuple):
    """One ``axo_policy_ports`` entry of a set, without the set id.

    ``prefixlen`` is the map's (32..39 or 48..64, see the module doc); ``proto``
    and ``port`` are the block's first point (host order); ``verdict`` 1 allow,
    2 deny. A tuple, so it is also ``policy.mapstate.PortEntry``."""

    prefixlen: int
    proto: int
    port: int
    verdict: int


def check_entry(entry: PortsEntry) -> PortsEntry:
    """Return the entry, or raise ValueError if the map would not hold it as meant."""
    bits = _line_bits(entry.prefixlen)
    if not 0 <= entry.proto <= 0xFF or not 0 <= entry.port <= 0xFFFF:
        raise ValueError(f"ports entry out of range: proto {entry.proto} port {entry.port}")
    if line_point(entry.proto, entry.port) & ((1 << (LINE_BITS - bits)) - 1):
        raise ValueError(f"ports entry not aligned to /{entry.prefixlen}: {entry}")
    if entry.verdict not in (ALLOW, DENY):
        raise ValueError(f"ports entry verdict must be 1 (allow) or 2 (deny): {entry}")
    return entry


def line_point(proto: int, port: int) -> int:
    """The point of the protocol/port line for (proto, port)."""
    return (proto << 16) | port


def _map_prefixlen(bits: int) -> int:
    if bits == 0:
        return 32
    if bits < 8:
        return 32 + bits
    if bits == 8:
        return 48
    return 40 + bits


def _line_bits(prefixlen: int) -> int:
    if 32 <= prefixlen <= 39:
        return prefixlen - 32
    if 48 <= prefixlen <= 64:
        return prefixlen - 40
    raise ValueError(f"ports prefix length {prefixlen} is not 32..39 or 48..64")


def entry_interval(entry: PortsEntry) -> Interval:
    """The inclusive interval of the line an entry covers."""
    start = line_point(entry.proto, entry.port)
    return start, start + (1 << (LINE_BITS - _line_bits(entry.prefixlen))) - 1


def _blocks(low: int, high: int) -> list[tuple[int, int]]:
    """Split [low, high] into maximal aligned blocks, as (start, prefix bits)."""
    out = []
    while low <= high:
        size_bits = (low & -low).bit_length() - 1 if low else LINE_BITS
        while low + (1 << size_bits) - 1 > high:
            size_bits -= 1
        out.append((low, LINE_BITS - size_bits))
        low += 1 << size_bits
    return out


def _check_intervals(name: str, intervals: Sequence[Interval]) -> None:
    previous = -1
    for low, high in intervals:
        if not 0 <= low <= high <= LINE_MAX:
            raise ValueError(f"{name} interval {(low, high)} is not within 0..{LINE_MAX:#x}")
        if low <= previous:
            raise ValueError(f"{name} intervals overlap or are unsorted at {(low, high)}")
        previous = high


def port_entries(verdicts: PortVerdicts) -> list[PortsEntry]:
    """The LPM entries of one port set, sorted; allow and deny must be disjoint."""
    _check_intervals("allow", verdicts.allow)
    _check_intervals("deny", verdicts.deny)
    tagged = sorted(
        [(low, high, ALLOW) for low, high in verdicts.allow]
        + [(low, high, DENY) for low, high in verdicts.deny]
    )
    for (_, high, _), (low, _, _) in itertools.pairwise(tagged):
        if low <= high:
            raise ValueError("allow and deny intervals overlap")
    entries = []
    for low, high, verdict in tagged:
        for start, bits in _blocks(low, high):
            entries.append(PortsEntry(_map_prefixlen(bits), start >> 16, start & 0xFFFF, verdict))
    return entries


def port_verdicts(entries: Iterable[PortsEntry]) -> PortVerdicts:
    """The inverse of :func:`port_entries` (for display): adjacent blocks of the
    same verdict merge back into intervals."""
    merged: dict[int, list[list[int]]] = {ALLOW: [], DENY: []}
    for entry in sorted(entries, key=entry_interval):
        low, high = entry_interval(check_entry(entry))
        runs = merged[entry.verdict]
        if runs and runs[-1][1] + 1 == low:
            runs[-1][1] = high
        else:
            runs.append([low, high])
    return PortVerdicts(
        allow=tuple((lo, hi) for lo, hi in merged[ALLOW]),
        deny=tuple((lo, hi) for lo, hi in merged[DENY]),
    )


def match(entries: Iterable[PortsEntry], proto: int, port: int) -> int | None:
    """The verdict the datapath's lookup gives (proto, port), or None.

    A bit-level model of the kernel's LPM trie over the key bits after the
    set id (``proto(8) pad(8) port(16)``, looked up with pad 0 and prefix
    length 64): independent of the interval arithmetic above, so tests can
    check one against the other."""
    lookup = (proto << 24) | port
    best: PortsEntry | None = None
    for entry in entries:
        bits = entry.prefixlen - 32
        key = (entry.proto << 24) | entry.port
        shift = 32 - bits
        if lookup >> shift == key >> shift and (best is None or bits > best.prefixlen - 32):
            best = entry
    return best.verdict if best is not None else None
