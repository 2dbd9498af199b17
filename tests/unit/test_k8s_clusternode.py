"""Node entries: what an agent writes parses back; a bad health address is refused by field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from axoneme.agent.nodelease import node_entry
from axoneme.k8s.clusternode import ClusterNode, parse_cluster_node
from axoneme.k8s.errors import ValidationError


def entry(health: str = "10.42.1.7") -> dict[str, Any]:
    return node_entry("node1", "172.30.0.11", ["10.42.1.0/24"], 15, health)


def test_the_agents_entry_parses_with_its_health_address() -> None:
    assert parse_cluster_node(entry()) == ClusterNode(
        "node1", "172.30.0.11", ("10.42.1.0/24",), "10.42.1.7"
    )
    assert entry()["spec"]["health"] == {"ipv4": "10.42.1.7"}  # CiliumNode's spec.health.ipv4


def test_without_health_checking_the_entry_has_no_health_member() -> None:
    raw = entry("")
    assert "health" not in raw["spec"]
    assert parse_cluster_node(raw).health_ipv4 == ""


def set_path(raw: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (["spec", "health", "ipv4"], "10.42.2.7", "spec.health.ipv4", "outside the node's pod"),
        (["spec", "health", "ipv4"], "8.8.8.8", "spec.health.ipv4", "outside"),
        (["spec", "health", "ipv4"], "fd00::7", "spec.health.ipv4", "not an IPv4"),
        (["spec", "health", "ipv4"], "10.42.1.300", "spec.health.ipv4", "not an IP address"),
        (["spec", "health", "ipv4"], 7, "spec.health.ipv4", "IP address string"),
        (["spec", "health"], "10.42.1.7", "spec.health", "must be an object"),
        (["spec", "podCIDRs"], ["10.42.1.0/33"], "spec.podCIDRs[0]", "not a CIDR"),
        (["spec", "addresses", 0, "ip"], "nope", "spec.addresses[0].ip", "not an IP"),
        (["metadata", "name"], "Node_1", "metadata.name", "DNS-1123"),
        (["apiVersion"], "v1", "apiVersion", "axoneme.io/v1"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_field(
    path: list[Any], value: Any, field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_cluster_node(set_path(entry(), path, value))
    assert caught.value.field == field
    assert words in caught.value.message
