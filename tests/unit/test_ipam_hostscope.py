"""Host-scope IPAM: reservations, round-robin, exhaustion, restore."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axoneme.ipam.hostscope import (
    AddressConflictError,
    Allocator,
    CIDRMismatchError,
    IPAMError,
    PoolExhaustedError,
)


def test_reserves_network_router_and_broadcast() -> None:
    a = Allocator("10.42.1.0/24")
    assert str(a.router) == "10.42.1.1"
    assert a.capacity == 253
    assert str(a.allocate("c1/eth0")) == "10.42.1.2"


def test_slash30_has_exactly_one_pod_address() -> None:
    a = Allocator("10.42.1.0/30")
    assert a.capacity == 1
    assert str(a.allocate("c1/eth0")) == "10.42.1.2"
    with pytest.raises(PoolExhaustedError, match="range is full"):
        a.allocate("c2/eth0")
    assert a.usage().allocated == 1


def test_allocate_is_idempotent_per_owner() -> None:
    a = Allocator("10.42.1.0/24")
    assert a.allocate("c1/eth0") == a.allocate("c1/eth0")
    assert a.usage().allocated == 1


def test_released_address_is_not_reused_at_once() -> None:
    a = Allocator("10.42.1.0/24")
    first = a.allocate("c1/eth0")
    a.release("c1/eth0")
    assert a.allocate("c2/eth0") != first


def test_snapshot_restore_round_trip() -> None:
    a = Allocator("10.42.1.0/24")
    ips = {a.allocate(f"c{i}/eth0") for i in range(5)}
    b = Allocator.restore(a.snapshot(), "10.42.1.0/24")
    assert {b.ip_of(f"c{i}/eth0") for i in range(5)} == ips
    assert b.allocate("new/eth0") not in ips


def test_restore_with_changed_cidr_tells_what_to_clean() -> None:
    a = Allocator("10.42.1.0/24")
    a.allocate("c1/eth0")
    with pytest.raises(CIDRMismatchError, match="delete the pods on this node"):
        Allocator.restore(a.snapshot(), "10.43.1.0/24")
    # With nothing allocated, the new CIDR simply takes over.
    empty = Allocator("10.42.1.0/24")
    assert Allocator.restore(empty.snapshot(), "10.43.1.0/24").cidr == ipaddress.ip_network(
        "10.43.1.0/24"
    )


def test_claim_conflicts() -> None:
    a = Allocator("10.42.1.0/24")
    a.claim(ipaddress.ip_address("10.42.1.7"), "c1/eth0")
    with pytest.raises(AddressConflictError):
        a.claim(ipaddress.ip_address("10.42.1.7"), "c2/eth0")
    with pytest.raises(AddressConflictError):
        a.claim(ipaddress.ip_address("10.42.1.1"), "c2/eth0")
    with pytest.raises(CIDRMismatchError):
        a.claim(ipaddress.ip_address("10.0.0.1"), "c2/eth0")


def test_too_small_cidr() -> None:
    with pytest.raises(IPAMError):
        Allocator("10.42.1.0/31")


def test_ipv6_pool_works_by_offset() -> None:
    a = Allocator("fd00:42::/64")
    assert str(a.allocate("c1/eth0")) == "fd00:42::2"


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 9)), max_size=60))
def test_never_hands_out_one_address_twice(ops: list[tuple[bool, int]]) -> None:
    a = Allocator("10.42.1.0/28")
    for allocate, who in ops:
        owner = f"c{who}/eth0"
        if allocate:
            try:
                a.allocate(owner)
            except PoolExhaustedError:
                assert a.usage().allocated == a.capacity
        else:
            a.release(owner)
        allocations = a.snapshot()["allocations"]
        assert len(set(allocations.values())) == len(allocations)
        assert all(ipaddress.ip_address(ip) not in (a.router,) for ip in allocations)
