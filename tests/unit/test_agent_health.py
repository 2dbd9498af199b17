"""Which addresses the agent's health checker probes."""

from __future__ import annotations

from axoneme.agent.health import health_targets
from axoneme.health.checker import NodeTarget
from axoneme.k8s.objects import Node

NODES = [
    Node("node2", ("10.42.2.0/24",), "172.30.0.12"),
    Node("node1", ("10.42.1.0/24",), "172.30.0.11"),
    Node("node3", ("10.42.3.0/24",), ""),  # no address yet: not probed
]


def test_targets_take_announced_health_ips_inside_the_node_cidr_only() -> None:
    learned = {"172.30.0.11": "10.42.1.2", "172.30.0.12": "192.0.2.1"}
    assert list(health_targets(NODES, learned)) == [
        NodeTarget("node1", "172.30.0.11", "10.42.1.2"),
        NodeTarget("node2", "172.30.0.12", ""),  # outside node2's pod CIDR: ignored
    ]


def test_targets_before_anything_was_learned_or_with_garbage() -> None:
    targets = list(health_targets(NODES, {"172.30.0.11": "not an ip"}))
    assert [t.health_ip for t in targets] == ["", ""]
