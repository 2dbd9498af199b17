"""Multi-pool IPAM in the endpoint manager and the agent's pool sync (pure parts)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from axoneme.agent.ippools import own_pools, pool_routes
from axoneme.datapath.fake import FakeDriver
from axoneme.endpoint.manager import EndpointError, EndpointManager, PodInfo


def manager(tmp_path: Path) -> EndpointManager:
    return EndpointManager(tmp_path / "state.json", "10.42.1.0/24", FakeDriver())


def test_pool_addresses_come_from_the_nodes_share(tmp_path: Path) -> None:
    m = manager(tmp_path)
    assert m.set_pools({"blue": "10.77.0.64/26"}) == []
    blue = m.add("c1", "eth0", "/run/netns/p1", PodInfo("d", "b", {}, None, "blue"))
    plain = m.add("c2", "eth0", "/run/netns/p2", PodInfo("d", "p", {}, None, "default"))
    assert ipaddress.ip_address(blue.ipv4) in ipaddress.ip_network("10.77.0.64/26")
    assert ipaddress.ip_address(plain.ipv4) in ipaddress.ip_network("10.42.1.0/24")
    assert m.delete("c1", "eth0") is not None
    assert m.pools["blue"].snapshot()["allocations"] == {}


def test_unknown_pool_fails_clearly_and_allocates_nothing(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.set_pools({"blue": "10.77.0.64/26"})
    with pytest.raises(EndpointError) as err:
        m.add("c1", "eth0", "/run/netns/p1", PodInfo("d", "x", {}, None, "red"))
    assert "IP pool 'red' has no CIDR on this node" in str(err.value)
    assert "spec.ipam.pools.allocated" in str(err.value) and "['blue']" in str(err.value)
    assert m.endpoints() == []


def test_pool_allocations_survive_a_restart_before_and_after_the_pool_is_known(
    tmp_path: Path,
) -> None:
    m = manager(tmp_path)
    m.set_pools({"blue": "10.77.0.64/26"})
    ep = m.add("c1", "eth0", "/run/netns/p1", PodInfo("d", "b", {}, None, "blue"))
    again = manager(tmp_path)  # the agent restarts: the CiliumNode is not read yet
    assert again.pools == {}
    again.add("c2", "eth0", "/run/netns/p2", PodInfo())  # a save meanwhile keeps the snapshot
    assert again.set_pools({"blue": "10.77.0.64/26"}) == []
    assert again.pools["blue"].owner_of(ipaddress.ip_address(ep.ipv4)) == ep.owner


def test_a_pool_share_that_changed_under_used_addresses_is_refused(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.set_pools({"blue": "10.77.0.64/26"})
    m.add("c1", "eth0", "/run/netns/p1", PodInfo("d", "b", {}, None, "blue"))
    (problem,) = m.set_pools({"blue": "10.77.1.0/26"})
    assert "allocator not configured for the requested cidr" in problem
    assert "(pool blue)" in problem
    assert str(m.pools["blue"].cidr) == "10.77.0.64/26"  # kept
    assert m.set_pools({}) == []
    assert "blue" in m.pools  # gone from the CiliumNode, kept while addresses are used


def cn(name: str, ip: str, pools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "CiliumNode",
        "metadata": {"name": name},
        "spec": {
            "addresses": [{"type": "InternalIP", "ip": ip}],
            "ipam": {"podCIDRs": ["10.42.9.0/24"], "pools": {"allocated": pools}},
        },
    }


def test_own_pools_and_routes_to_other_nodes_shares() -> None:
    nodes = {
        "node1": cn("node1", "172.30.0.11", [{"pool": "blue", "cidrs": ["10.77.0.0/26"]}]),
        "node2": cn("node2", "172.30.0.12", [{"pool": "blue", "cidrs": ["10.77.0.64/26"]}]),
        "node3": cn("node3", "", [{"pool": "blue", "cidrs": ["10.77.0.128/26"]}]),
    }
    assert own_pools(nodes["node1"]) == {"blue": "10.77.0.0/26"}
    assert own_pools(None) == {}
    # The default pool is noderoutes' job; a node without an address gets no route.
    assert pool_routes(nodes, "node1") == {"10.77.0.64/26": "172.30.0.12"}
