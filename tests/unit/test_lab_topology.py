"""The lab's plan: addresses and CIDRs, and the checks on its configuration."""

import ipaddress
import itertools

import pytest

from axoneme.lab.topology import (
    ANNOUNCED_PREFIXES,
    EXTERNAL_IP_RANGE,
    LB_IP_POOL,
    SERVICE_CIDR,
    UNDERLAY,
    WORLD_PREFIXES,
    LabConfig,
    machine_clashes,
    node_plans,
    pod_netns,
)


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
        (LabConfig(pod_cidr="198.18.1.0/24", pod_cidr_mask=28), "LoadBalancer pool"),
        (LabConfig(pod_cidr="198.18.0.0/24", pod_cidr_mask=28), "external IP range"),
    ],
)
def test_bad_config_names_the_flag(config: LabConfig, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        config.validate()


def test_pod_netns_names_are_short_and_distinct() -> None:
    a, b = pod_netns("demo", "web", "u1"), pod_netns("demo", "web", "u2")
    assert a != b and a.startswith("axn-p-") and len(a) <= 16


def test_lab_ranges_are_disjoint_and_the_world_learns_the_service_ones() -> None:
    ranges = [SERVICE_CIDR, str(UNDERLAY), LB_IP_POOL, EXTERNAL_IP_RANGE, *WORLD_PREFIXES]
    nets = [ipaddress.ip_network(r) for r in [*ranges, LabConfig().pod_cidr]]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(nets, 2))
    assert set(ANNOUNCED_PREFIXES) == {LB_IP_POOL, EXTERNAL_IP_RANGE}


def test_lab_up_keeps_clear_of_the_machines_networks() -> None:
    # This machine's own network is 192.0.2.0/24 (gateway .1): nothing the lab routes is there.
    assert machine_clashes(["127.0.0.1/8", "192.0.2.2/24", "192.0.2.1/32", "0.0.0.0/0"]) == []
    assert machine_clashes(["198.18.0.0/15"]) == [
        (LB_IP_POOL, "198.18.0.0/15"),
        (EXTERNAL_IP_RANGE, "198.18.0.0/15"),
    ]
    assert machine_clashes(["10.1.0.0/16", "203.0.113.77/32"]) == [
        ("203.0.113.0/24", "203.0.113.77/32")
    ]
