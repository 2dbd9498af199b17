"""Cluster-pool IPAM: config validation, allocation order, occupy, release, the stale-CIDR trap."""

from __future__ import annotations

import pytest

from axoneme.operator.clusterpool import (
    ClusterPool,
    PoolConfigError,
    PoolExhaustedError,
    StaleCIDRError,
    parse_pool_config,
)


def pool(*cidrs: str, mask: int = 24) -> ClusterPool:
    return ClusterPool(parse_pool_config(list(cidrs), mask))


@pytest.mark.parametrize(
    ("cidrs", "mask", "field"),
    [
        ([], 24, "clusterPoolIPv4PodCIDRList"),
        (["10.0.0.0/33"], 24, r"clusterPoolIPv4PodCIDRList\[0\]"),
        (["10.0.0.0/16", "nope"], 24, r"clusterPoolIPv4PodCIDRList\[1\]"),
        (["fd00::/64"], 24, r"clusterPoolIPv4PodCIDRList\[0\]: fd00::/64 is not an IPv4"),
        (["10.0.0.0/16", "10.0.1.0/24"], 24, r"\[1\]: 10.0.1.0/24 overlaps"),
        (["10.0.0.0/24"], 16, "clusterPoolIPv4MaskSize: /16 is larger"),
        (["10.0.0.0/16"], 31, "clusterPoolIPv4MaskSize: 31"),
    ],
)
def test_bad_config_names_the_setting(cidrs: list[str], mask: int, field: str) -> None:
    with pytest.raises(PoolConfigError, match=field):
        parse_pool_config(cidrs, mask)


def test_lowest_free_across_the_list_then_exhausted() -> None:
    p = pool("10.0.0.0/23", "10.9.0.0/24", mask=24)
    assert p.allocate("a") == "10.0.0.0/24"
    assert p.allocate("b") == "10.0.1.0/24"
    assert p.allocate("c") == "10.9.0.0/24"
    assert p.allocate("a") == "10.0.0.0/24"  # idempotent
    with pytest.raises(PoolExhaustedError, match="all 3 /24 CIDRs"):
        p.allocate("d")
    assert p.release("b") == "10.0.1.0/24"
    assert p.allocate("d") == "10.0.1.0/24"
    assert p.release("nobody") is None


def test_prefer_the_nodes_own_cidr_when_usable() -> None:
    p = pool("10.42.0.0/16")
    assert p.allocate("node2", prefer="10.42.2.0/24") == "10.42.2.0/24"
    assert p.allocate("x", prefer="10.42.2.0/24") == "10.42.0.0/24"  # taken: lowest free
    assert p.allocate("y", prefer="10.99.0.0/24") == "10.42.1.0/24"  # outside the pool
    assert p.allocate("z", prefer="10.42.3.0/25") == "10.42.3.0/24"  # wrong size
    assert p.allocate("w", prefer="garbage") == "10.42.4.0/24"


def test_occupy_restores_and_refuses_double_ownership() -> None:
    p = pool("10.42.0.0/16")
    p.occupy("node1", "10.42.7.0/24")
    assert p.allocate("node1") == "10.42.7.0/24"
    with pytest.raises(StaleCIDRError, match="already allocated to node1"):
        p.occupy("node2", "10.42.7.0/24")


def test_stale_cidr_from_another_install_says_what_to_clean() -> None:
    """The reference document's trap: a CiliumNode keeps a CIDR of the old pod CIDR list."""
    p = pool("10.42.0.0/16")
    with pytest.raises(StaleCIDRError) as err:
        p.occupy("node1", "10.0.1.0/24")
    text = str(err.value)
    assert "allocator not configured for the requested cidr" in text
    assert "CiliumNode node1 holds pod CIDR 10.0.1.0/24" in text
    assert "axoneme delete ciliumnode node1" in text
    assert "state.json" in text
    assert "clusterPoolIPv4PodCIDRList" in text
    with pytest.raises(StaleCIDRError, match="does not contain"):
        p.occupy("node1", "10.42.1.0/25")  # right range, wrong mask size
