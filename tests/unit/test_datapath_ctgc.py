"""Conntrack GC's lifetimes are the datapath's (bpf/lib/conntrack.h)."""

from __future__ import annotations

import socket

import pytest

from axoneme.datapath.ctgc import expired, lifetime_ns
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
