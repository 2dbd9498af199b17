"""Node registration planning: CiliumNodes with CIDRs and pool shares; removal; stale CIDRs."""

from __future__ import annotations

from typing import Any

import pytest

from axoneme.ipam.pools import DEFAULT_POOL, node_pool_cidrs, pool_for
from axoneme.operator.clusterpool import PoolConfigError, parse_pool_config
from axoneme.operator.multipool import parse_ip_pool
from axoneme.operator.nodes import plan_nodes

CONFIG = parse_pool_config(["10.42.0.0/16"], 24)


def node(name: str, ip: str, pod_cidr: str | None = None) -> dict[str, Any]:
    spec = {"podCIDR": pod_cidr} if pod_cidr else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": spec,
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def ip_pool(name: str, cidrs: list[str], mask: int) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2alpha1",
        "kind": "CiliumPodIPPool",
        "metadata": {"name": name},
        "spec": {"ipv4": {"cidrs": cidrs, "maskSize": mask}},
    }


def test_new_nodes_get_ciliumnodes_and_a_second_pass_changes_nothing() -> None:
    nodes = [node("node1", "172.30.0.11", "10.42.1.0/24"), node("new", "172.30.0.13")]
    pools = [parse_ip_pool(ip_pool("blue", ["10.77.0.0/16"], 26))]
    first = plan_nodes(CONFIG, pools, nodes, [])
    assert not first.errors and not first.deletes
    by = {o["metadata"]["name"]: o for o in first.puts}
    assert by["node1"]["spec"]["ipam"]["podCIDRs"] == ["10.42.1.0/24"]  # its own, kept
    assert by["new"]["spec"]["ipam"]["podCIDRs"] == ["10.42.0.0/24"]  # lowest free
    assert by["new"]["spec"]["addresses"] == [{"type": "InternalIP", "ip": "172.30.0.13"}]
    assert node_pool_cidrs(by["new"]) == {
        DEFAULT_POOL: ["10.42.0.0/24"],
        "blue": ["10.77.0.0/26"],
    }
    assert node_pool_cidrs(by["node1"])["blue"] == ["10.77.0.64/26"]
    again = plan_nodes(CONFIG, pools, nodes, first.puts)
    assert again.puts == [] and again.deletes == [] and not again.errors


def test_a_removed_node_is_deleted_and_its_cidr_reused() -> None:
    nodes = [node("a", "172.30.0.11"), node("b", "172.30.0.12")]
    first = plan_nodes(CONFIG, [], nodes, [])
    cidr_b = next(o for o in first.puts if o["metadata"]["name"] == "b")["spec"]["ipam"]
    second = plan_nodes(CONFIG, [], [nodes[0], node("c", "172.30.0.13")], first.puts)
    assert [o["metadata"]["name"] for o in second.deletes] == ["b"]
    (added,) = second.puts
    assert added["metadata"]["name"] == "c"
    assert added["spec"]["ipam"]["podCIDRs"] == cidr_b["podCIDRs"]


def test_an_operator_taking_over_keeps_every_allocation() -> None:
    nodes = [node(f"n{i}", f"172.30.0.{10 + i}") for i in range(5)]
    first = plan_nodes(CONFIG, [], nodes, [])
    # A new leader sees the CiliumNodes in another order: nothing moves.
    after = plan_nodes(CONFIG, [], list(reversed(nodes)), list(reversed(first.puts)))
    assert after.puts == []


def test_stale_cidr_is_reported_on_the_ciliumnode_not_renumbered() -> None:
    old = parse_pool_config(["10.0.0.0/16"], 24)
    first = plan_nodes(old, [], [node("node1", "172.30.0.11")], [])
    plan = plan_nodes(CONFIG, [], [node("node1", "172.30.0.11")], first.puts)
    assert "allocator not configured for the requested cidr" in plan.errors["node1"]
    (put,) = plan.puts
    assert put["spec"]["ipam"]["podCIDRs"] == ["10.0.0.0/24"]  # left alone
    assert "axoneme delete ciliumnode node1" in put["status"]["ipam"]["operatorStatus"]["error"]


def test_bad_node_is_reported_others_proceed() -> None:
    bad = node("bad", "172.30.0.11")
    bad["spec"] = {"podCIDR": "not-a-cidr"}
    plan = plan_nodes(CONFIG, [], [bad, node("ok", "172.30.0.12")], [])
    assert "spec.podCIDRs[0]" in plan.errors["bad"]
    assert [o["metadata"]["name"] for o in plan.puts] == ["ok"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.ipv4: required"),
        ({"ipv4": {"cidrs": "10.0.0.0/8", "maskSize": 24}}, "spec.ipv4.cidrs: must be a list"),
        ({"ipv4": {"cidrs": ["10.0.0.0/8"], "maskSize": "24"}}, "spec.ipv4.maskSize: must be"),
        ({"ipv4": {"cidrs": ["10.0.0.0/8", "x"], "maskSize": 24}}, r"spec.ipv4.cidrs\[1\]"),
        ({"ipv4": {"cidrs": ["10.0.0.0/24"], "maskSize": 16}}, "spec.ipv4.maskSize: /16"),
    ],
)
def test_bad_pool_names_the_field(spec: dict[str, Any], field: str) -> None:
    obj = {"kind": "CiliumPodIPPool", "metadata": {"name": "p"}, "spec": spec}
    with pytest.raises(PoolConfigError, match=f"CiliumPodIPPool p: {field}"):
        parse_ip_pool(obj)


def test_pool_annotation_precedence() -> None:
    key = "ipam.cilium.io/ip-pool"
    assert pool_for({key: "blue"}, {key: "red"}) == "blue"
    assert pool_for({}, {key: "red"}) == "red"
    assert pool_for({key: " "}, {}) == DEFAULT_POOL
