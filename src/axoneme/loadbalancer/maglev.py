"""Maglev consistent hashing (Eisenbud et al., NSDI 2016), as Cilium uses it.

Each backend gets a permutation of the table's M slots from two hashes of
its name (offset, skip); backends take turns claiming their next unclaimed
slot until the table is full. M must be prime so every skip visits every
slot. Removing one backend changes only about 1/N of the slots, mostly
those it held: the connections on the others keep their backend.

Also the Python twin of the datapath's flow hash (``lb_hash`` in
``bpf/lib/lb.h``), so tests can say which slot a flow lands on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["DEFAULT_TABLE_SIZE", "TABLE_SIZES", "flow_hash", "is_prime", "table"]

DEFAULT_TABLE_SIZE = 16381
# The sizes Cilium offers that fit our map's value (bpf/lib/lb.h LB_MAGLEV_MAX).
TABLE_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381)

_M32 = 0xFFFFFFFF


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def _hashes(name: str) -> tuple[int, int]:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")


def table(backends: Sequence[tuple[str, int]], size: int = DEFAULT_TABLE_SIZE) -> tuple[int, ...]:
    """The lookup table: ``size`` entries, each the id of a backend.

    ``backends`` are (name, id) pairs; the name (e.g. ``10.42.1.2:8080``)
    decides the permutation, so the table depends on which backends there
    are, not on their ids or order.
    """
    if not is_prime(size):
        raise ValueError(f"Maglev table size {size} is not prime")
    if not backends:
        return ()
    ordered = sorted(backends)
    perms = []
    for name, _ in ordered:
        h1, h2 = _hashes(name)
        perms.append((h1 % size, h2 % (size - 1) + 1))
    entry = [-1] * size
    nexts = [0] * len(ordered)
    filled = 0
    while True:
        for i, (offset, skip) in enumerate(perms):
            c = (offset + nexts[i] * skip) % size
            while entry[c] >= 0:
                nexts[i] += 1
                c = (offset + nexts[i] * skip) % size
            entry[c] = ordered[i][1]
            nexts[i] += 1
            filled += 1
            if filled == size:
                return tuple(entry)


def _mix(h: int, k: int) -> int:
    k = (k * 0xCC9E2D51) & _M32
    k = ((k << 15) | (k >> 17)) & _M32
    k = (k * 0x1B873593) & _M32
    h ^= k
    h = ((h << 13) | (h >> 19)) & _M32
    return (h * 5 + 0xE6546B64) & _M32


def flow_hash(a: int, b: int, c: int) -> int:
    """``lb_hash`` of lib/lb.h over three 32-bit words (as the C reads them)."""
    h = _mix(_mix(_mix(0x9747B28C, a & _M32), b & _M32), c & _M32)
    h ^= 12
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h
