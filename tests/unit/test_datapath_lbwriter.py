"""The LB writer's NAT purge picks the entries of removed backends only."""

from __future__ import annotations

from axoneme.datapath.linux.lbmaps import (
    LB_BE_TERMINATING,
    NAT_F_EGRESS,
    NAT_F_INGRESS,
    NAT_F_REDIRECT,
    Backend,
    Nat,
    NatKey,
)
from axoneme.datapath.linux.lbwriter import backend_addrs, nat_keys_to

CLIENT, FRONTEND, NODE = "203.0.113.7", "10.99.0.1", "10.99.0.9"
GONE = Backend("10.42.0.1", 8080, 6, 0, 7)
KEPT = Backend("10.42.0.2", 8080, 6, LB_BE_TERMINATING, 7)


def snat_flow(sport: int, be: Backend) -> list[tuple[NatKey, Nat]]:
    fwd = NatKey(CLIENT, FRONTEND, sport, 30080, 6)
    to = Nat(NODE, be.ip, sport, be.port, NAT_F_INGRESS | NAT_F_REDIRECT, 1)
    back = Nat(FRONTEND, CLIENT, 30080, sport, NAT_F_INGRESS | NAT_F_REDIRECT, 1)
    return [(fwd, to), (to.partner(fwd), back)]


def local_flow(sport: int, be: Backend) -> list[tuple[NatKey, Nat]]:
    fwd = NatKey(CLIENT, FRONTEND, sport, 30080, 6)
    to = Nat(CLIENT, be.ip, sport, be.port, NAT_F_INGRESS, 1)
    back = Nat(FRONTEND, CLIENT, 30080, sport, NAT_F_EGRESS, 1)
    return [(fwd, to), (to.partner(fwd), back)]


def test_the_forward_and_reverse_entries_of_a_removed_backend_are_picked() -> None:
    before = backend_addrs({b"\1": GONE.pack(), b"\2": KEPT.pack()})
    after = backend_addrs({b"\2": KEPT.pack()})  # still there while terminating
    gone = before - after
    flows = [*snat_flow(1, GONE), *local_flow(2, GONE), *snat_flow(3, KEPT), *local_flow(4, KEPT)]
    picked = nat_keys_to([(k.pack(), v.pack()) for k, v in flows], gone)
    assert sorted(NatKey.unpack(k) for k in picked) == sorted(
        k for k, _ in [*snat_flow(1, GONE), *local_flow(2, GONE)]
    )


def test_the_same_address_on_another_port_or_protocol_is_not_the_backend() -> None:
    gone = backend_addrs({b"\1": GONE.pack()})
    other_port = snat_flow(5, Backend(GONE.ip, 9090, 6, 0, 7))
    other_proto = [
        (NatKey(CLIENT, FRONTEND, 6, 30080, 17), Nat(NODE, GONE.ip, 6, 8080, NAT_F_INGRESS, 1))
    ]
    entries = [(k.pack(), v.pack()) for k, v in [*other_port, *other_proto]]
    assert nat_keys_to(entries, gone) == []
