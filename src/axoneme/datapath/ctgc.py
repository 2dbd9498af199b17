"""Conntrack garbage collection: remove ``axo_ct`` and ``axo_lb_nat`` entries whose
lifetime has passed.

The datapath treats an expired entry as a miss and overwrites it, and the
LRU evicts under pressure, but neither frees the entries of connections that
simply stopped: they sit in the map until pressure comes, hiding how many
connections are really live. This walk removes them. The lifetimes mirror
``bpf/lib/conntrack.h`` (``ct_lifetime``); ``last_seen_ns`` is
``bpf_ktime_get_ns()``, i.e. CLOCK_MONOTONIC, which ``time.monotonic_ns()`` reads.

The north-south NAT entries (``bpf/lib/nodeport.h``) have the same lifetimes,
kept in whole seconds of that clock (``nat_lifetime``/``nat_expired``): the
datapath already treats an expired one as absent, so deleting it changes no
flow and frees its SNAT port and LRU slot.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from axoneme.datapath.linux.lbmaps import NAT_F_CLOSING, NAT_F_ESTABLISHED, Nat, NatKey
from axoneme.datapath.linux.maps import CtKey, CTMap, CtValue, NatMap

K = TypeVar("K")
V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)

NSEC_PER_SEC = 1_000_000_000
CT_LIFETIME_TCP = 21600 * NSEC_PER_SEC  # established TCP
CT_SYN_TIMEOUT = 60 * NSEC_PER_SEC  # TCP without a reply yet
CT_LIFETIME_NONTCP = 60 * NSEC_PER_SEC
CT_CLOSE_TIMEOUT = 10 * NSEC_PER_SEC  # after FIN or RST


def lifetime_ns(value: CtValue, proto: int) -> int:
    if value.closing:
        return CT_CLOSE_TIMEOUT
    if proto != socket.IPPROTO_TCP:
        return CT_LIFETIME_NONTCP
    return CT_LIFETIME_TCP if value.reply_seen else CT_SYN_TIMEOUT


def expired(key: CtKey, value: CtValue, now_ns: int) -> bool:
    """As the datapath decides it (another CPU may have stored a later timestamp)."""
    last = value.last_seen_ns
    return now_ns > last and now_ns - last > lifetime_ns(value, key.proto)


def nat_lifetime_s(value: Nat, proto: int) -> int:
    """As ``nat_lifetime`` in bpf/lib/nodeport.h, in seconds."""
    if value.flags & NAT_F_CLOSING:
        return CT_CLOSE_TIMEOUT // NSEC_PER_SEC
    if proto != socket.IPPROTO_TCP:
        return CT_LIFETIME_NONTCP // NSEC_PER_SEC
    if value.flags & NAT_F_ESTABLISHED:
        return CT_LIFETIME_TCP // NSEC_PER_SEC
    return CT_SYN_TIMEOUT // NSEC_PER_SEC


def nat_expired(key: NatKey, value: Nat, now_ns: int) -> bool:
    """As the datapath decides it, on whole seconds (``nat_expired``)."""
    now = now_ns // NSEC_PER_SEC
    return now > value.last_seen and now - value.last_seen > nat_lifetime_s(value, key.proto)


@dataclass(frozen=True)
class GCResult:
    alive: int
    deleted: int
    seconds: float


class _GCMap(Protocol[K, V_co]):
    def items(self) -> Iterable[tuple[K, V_co]]: ...
    def get(self, key: K) -> V_co | None: ...
    def delete(self, key: K) -> bool: ...


def _collect(m: _GCMap[K, V], dead: Callable[[K, V, int], bool], now_ns: int | None) -> GCResult:
    """One pass over a map. An entry is re-read right before its delete, so a flow
    that sent a packet during the walk keeps its entry."""
    started = time.perf_counter()
    now = time.monotonic_ns() if now_ns is None else now_ns
    alive = deleted = 0
    for key, value in m.items():
        if not dead(key, value, now):
            alive += 1
            continue
        current = m.get(key)
        if current is None:
            continue  # evicted or overwritten meanwhile
        if dead(key, current, now) and m.delete(key):
            deleted += 1
        else:
            alive += 1
    return GCResult(alive, deleted, time.perf_counter() - started)


def collect(ct: CTMap, now_ns: int | None = None) -> GCResult:
    """One pass over ``axo_ct``."""
    return _collect(ct, expired, now_ns)


def collect_nat(nat: NatMap, now_ns: int | None = None) -> GCResult:
    """One pass over ``axo_lb_nat``."""
    return _collect(nat, nat_expired, now_ns)
