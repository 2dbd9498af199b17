"""Conntrack and NAT GC lifetimes are the datapath's (bpf/lib/conntrack.h, nodeport.h)."""

from __future__ import annotations

import socket

import pytest

from axoneme.datapath.ctgc import (
    collect_nat,
    expired,
    lifetime_ns,
    nat_expired,
    nat_lifetime_s,
)
from axoneme.datapath.linux.lbmaps import (
    NAT_F_CLOSING,
    NAT_F_ESTABLISHED,
    NAT_F_INGRESS,
    Nat,
    NatKey,
)
from axoneme.datapath.linux.maps import CtKey, CtValue

S = 1_000_000_000
TCP = CtKey("10.0.0.1", "10.0.0.2", 40000, 80, socket.IPPROTO_TCP, 1)
UDP = CtKey("10.0.0.1", "10.0.0.2", 40000, 53, socket.IPPROTO_UDP, 1)


def value(last: int, *, reply_seen: int = 0, closing: int = 0) -> CtValue:
    return CtValue(0, last, 1, 60, 1001, 7, reply_seen=reply_seen, closing=closing)


@pytest.mark.parametrize(
    ("key", "entry", "lifetime"),
    [
        (TCP, value(0), 60 * S),  # SYN seen, no reply yet
        (TCP, value(0, reply_seen=1), 21600 * S),  # established
        (TCP, value(0, reply_seen=1, closing=1), 10 * S),  # FIN or RST
        (UDP, value(0, reply_seen=1), 60 * S),
        (UDP, value(0, closing=1), 10 * S),
    ],
)
def test_lifetimes(key: CtKey, entry: CtValue, lifetime: int) -> None:
    assert lifetime_ns(entry, key.proto) == lifetime
    start = 1000 * S
    live = CtValue(**{**entry.__dict__, "last_seen_ns": start})
    assert not expired(key, live, start + lifetime)
    assert expired(key, live, start + lifetime + 1)


def test_a_timestamp_from_the_future_is_alive() -> None:
    # Another CPU stored a later last_seen than the collector's clock read.
    assert not expired(UDP, value(2000 * S), 1000 * S)


# ---- axo_lb_nat (bpf/lib/nodeport.h nat_lifetime / nat_expired) ----------------------


def nat(last: int, flags: int = 0) -> Nat:
    return Nat("10.0.0.1", "10.0.1.5", 40000, 8080, NAT_F_INGRESS | flags, last)


NAT_TCP = NatKey("203.0.113.7", "10.99.0.1", 40000, 30080, socket.IPPROTO_TCP)
NAT_UDP = NatKey("203.0.113.7", "10.99.0.1", 40000, 30053, socket.IPPROTO_UDP)


@pytest.mark.parametrize(
    ("key", "flags", "lifetime"),
    [
        (NAT_TCP, 0, 60),  # handshake only
        (NAT_TCP, NAT_F_ESTABLISHED, 21600),
        (NAT_TCP, NAT_F_ESTABLISHED | NAT_F_CLOSING, 10),
        (NAT_TCP, NAT_F_CLOSING, 10),  # an RST before the handshake finished
        (NAT_UDP, 0, 60),
        (NAT_UDP, NAT_F_ESTABLISHED, 60),
    ],
)
def test_nat_lifetimes(key: NatKey, flags: int, lifetime: int) -> None:
    assert nat_lifetime_s(nat(0, flags), key.proto) == lifetime
    last = 1000
    assert not nat_expired(key, nat(last, flags), (last + lifetime) * S)
    assert not nat_expired(key, nat(last, flags), (last + lifetime) * S + S - 1)  # whole seconds
    assert nat_expired(key, nat(last, flags), (last + lifetime + 1) * S)


def test_nat_timestamp_from_the_future_is_alive() -> None:
    assert not nat_expired(NAT_UDP, nat(2000), 1000 * S)


class FakeNat:
    """NatMap's surface over a dict; ``touch`` refreshes an entry during the walk."""

    def __init__(self, entries: dict[NatKey, Nat], touch: NatKey | None = None) -> None:
        self.entries = dict(entries)
        self.touch = touch

    def items(self) -> list[tuple[NatKey, Nat]]:
        out = list(self.entries.items())
        if self.touch is not None:  # a packet right after the walk read it
            old = self.entries[self.touch]
            self.entries[self.touch] = Nat(**{**old.__dict__, "last_seen": 10_000})
        return out

    def get(self, key: NatKey) -> Nat | None:
        return self.entries.get(key)

    def delete(self, key: NatKey) -> bool:
        return self.entries.pop(key, None) is not None


def test_collect_nat_deletes_expired_and_rereads_before_deleting() -> None:
    live = NatKey("203.0.113.7", "10.99.0.1", 1, 30080, socket.IPPROTO_TCP)
    dead = NatKey("203.0.113.7", "10.99.0.1", 2, 30080, socket.IPPROTO_TCP)
    revived = NatKey("203.0.113.7", "10.99.0.1", 3, 30080, socket.IPPROTO_TCP)
    fake = FakeNat(
        {live: nat(9990, NAT_F_ESTABLISHED), dead: nat(9900), revived: nat(9900)}, touch=revived
    )
    result = collect_nat(fake, 10_000 * S)  # type: ignore[arg-type]
    assert (result.alive, result.deleted) == (2, 1)
    assert set(fake.entries) == {live, revived}
