"""`axoneme get ciliumnodes|clusternodes` tables: CIDRs, pool shares and the operator's error."""

from __future__ import annotations

from axoneme.agent.nodelease import node_entry
from axoneme.cli.resources import kind_of, render


def test_ciliumnode_table_shows_pools_and_the_ipam_error() -> None:
    item = {
        "metadata": {"name": "node1"},
        "spec": {
            "addresses": [{"type": "InternalIP", "ip": "172.30.0.11"}],
            "ipam": {
                "podCIDRs": ["10.0.1.0/24"],
                "pools": {"allocated": [{"pool": "blue", "cidrs": ["10.77.0.0/26"]}]},
            },
        },
        "status": {"ipam": {"operatorStatus": {"error": "stale: delete ciliumnode node1"}}},
    }
    lines = render("CiliumNode", [item], "", False).splitlines()
    assert lines[0].split() == ["NAME", "INTERNAL-IP", "POD-CIDRS", "POOLS", "IPAM-ERROR"]
    assert lines[1].split()[:4] == ["node1", "172.30.0.11", "10.0.1.0/24", "blue=10.77.0.0/26"]
    assert lines[1].endswith("stale: delete ciliumnode node1")


def test_clusternode_table_and_aliases() -> None:
    item = {
        "metadata": {"name": "node2"},
        "spec": {"addresses": [{"type": "InternalIP", "ip": "172.30.0.12"}], "podCIDRs": []},
    }
    healthy = node_entry("node1", "172.30.0.11", ["10.42.1.0/24"], 15, "10.42.1.9")
    lines = render("ClusterNode", [item, healthy], "", False).splitlines()
    assert lines[0].split() == ["NAME", "INTERNAL-IP", "POD-CIDRS", "HEALTH-IP"]
    assert lines[1].split() == ["node2", "172.30.0.12", "<none>", "<none>"]
    assert lines[2].split() == ["node1", "172.30.0.11", "10.42.1.0/24", "10.42.1.9"]
    assert kind_of("cn") == "CiliumNode" and kind_of("ippools") == "CiliumPodIPPool"
    assert kind_of("clusternodes") == "ClusterNode" and kind_of("cep") == "CiliumEndpoint"
