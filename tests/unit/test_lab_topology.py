"""The lab's plan: addresses and CIDRs, and the checks on its configuration."""

import pytest

from axoneme.lab.topology import LabConfig, node_plans, pod_netns


def test_two_nodes() -> None:
    plans = node_plans(LabConfig(nodes=2))
    assert [(p.name, p.ip, p.pod_cidr, p.netns) for p in plans] == [
        ("node1", "172.30.0.11", "10.42.1.0/24", "axn-node1"),
        ("node2", "172.30.0.12", "10.42.2.0/24", "axn-node2"),
    ]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (LabConfig(nodes=0), "--nodes"),
        (LabConfig(nodes=3, pod_cidr="10.42.0.0/23", pod_cidr_mask=24), "--nodes"),
        (LabConfig(pod_cidr="10.42.0.0/33"), "--pod-cidr"),
        (LabConfig(pod_cidr="fd00::/64"), "--pod-cidr"),
        (LabConfig(pod_cidr_mask=31), "--pod-cidr-mask"),
    ],
)
def test_bad_config_names_the_flag(config: LabConfig, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        config.validate()


def test_pod_netns_names_are_short_and_distinct() -> None:
    a, b = pod_netns("demo", "web", "u1"), pod_netns("demo", "web", "u2")
    assert a != b and a.startswith("axn-p-") and len(a) <= 16
