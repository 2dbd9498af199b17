"""CiliumNetworkPolicy entities and CIDRs with real traffic, and the seed document's
examples (reference/cilium-evaluation-note.md) behaving as their author expected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from privileged.helpers import (
    apply,
    apply_policies,
    ax,
    clear_policies,
    cnp,
    manifest,
    namespace,
    pod_manifest,
    wait_for,
    wait_pods,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NS = "seed"
WORLD_A = "198.51.100.10"
WORLD_B = "203.0.113.10"


def outcomes(*lines: str) -> list[str]:
    out = ax("probe", "--timeout", "1", "-f", "-", stdin="\n".join(lines), check=False).stdout
    return [line.split()[0] for line in out.splitlines()]


@pytest.fixture(scope="module")
def seed(lab: dict[str, Any]) -> None:
    apply(
        namespace(NS),
        pod_manifest(NS, "nginx", "node2", {"app": "nginx"}, [(80, "TCP"), (81, "TCP")]),
        pod_manifest(NS, "app1", "node1", {"app": "app1"}, [(80, "TCP")]),
        pod_manifest(NS, "app2", "node1", {"app": "app2"}, [(80, "TCP")]),
    )
    wait_pods(NS, {"nginx", "app1", "app2"})


@pytest.fixture
def clean(seed: None) -> Iterator[None]:
    yield
    clear_policies()


def test_seed_l3_allow_app1_to_nginx(clean: None) -> None:
    apply_policies(
        cnp(
            NS,
            "l3-rule-allow-app1-to-nginx",
            {
                "endpointSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "app1"}}]}],
            },
        )
    )
    assert outcomes(
        f"{NS}/app1 {NS}/nginx:80/TCP",
        f"{NS}/app2 {NS}/nginx:80/TCP",
        f"{NS}/app1 {NS}/nginx:81/TCP",
    ) == ["reachable", "timeout", "reachable"]


def test_seed_app1_to_host_only(clean: None) -> None:
    apply_policies(
        cnp(
            NS,
            "app1-to-host",
            {
                "endpointSelector": {"matchLabels": {"app": "app1"}},
                "egress": [{"toEntities": ["host"]}],
            },
        )
    )
    # "refused" = the node answered (nothing listens on :80): the packet got through.
    assert outcomes(
        f"{NS}/app1 node:node1:80/TCP",
        f"{NS}/app1 node:node2:80/TCP",
        f"{NS}/app1 {NS}/nginx:80/TCP",
        f"{NS}/app2 node:node2:80/TCP",
    ) == ["refused", "timeout", "timeout", "refused"]


def test_seed_l4_rule_port_80_only(clean: None) -> None:
    apply_policies(
        cnp(
            NS,
            "l4-rule",
            {
                "endpointSelector": {"matchLabels": {"app": "app1"}},
                "egress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
            },
        )
    )
    assert outcomes(
        f"{NS}/app1 {NS}/nginx:80/TCP",
        f"{NS}/app1 {NS}/nginx:81/TCP",
        f"{NS}/app1 {WORLD_A}:80/TCP",
        f"{NS}/app1 {WORLD_A}:53/UDP",
    ) == ["reachable", "timeout", "reachable", "timeout"]


def test_to_entities_world_and_remote_node(clean: None) -> None:
    apply_policies(
        cnp(
            NS,
            "world-only",
            {
                "endpointSelector": {"matchLabels": {"app": "app1"}},
                "egress": [{"toEntities": ["world", "remote-node"]}],
            },
        )
    )
    assert outcomes(
        f"{NS}/app1 {WORLD_A}:80/TCP",
        f"{NS}/app1 {WORLD_B}:53/UDP",
        f"{NS}/app1 {NS}/nginx:80/TCP",
        f"{NS}/app1 node:node2:80/TCP",
        f"{NS}/app1 node:node1:80/TCP",
    ) == ["reachable", "reachable", "timeout", "refused", "timeout"]


def test_to_cidr_set_with_except(clean: None) -> None:
    apply_policies(
        cnp(
            NS,
            "cidr",
            {
                "endpointSelector": {"matchLabels": {"app": "app1"}},
                "egress": [
                    {
                        "toCIDRSet": [
                            {"cidr": "198.51.100.0/24", "except": [f"{WORLD_A}/32"]},
                            {"cidr": "203.0.113.0/24"},
                        ]
                    }
                ],
            },
        )
    )
    assert outcomes(
        f"{NS}/app1 {WORLD_A}:80/TCP", f"{NS}/app1 {WORLD_B}:80/TCP", f"{NS}/app1 {NS}/nginx:80/TCP"
    ) == ["timeout", "reachable", "timeout"]
    ipcache = ax("bpf", "ipcache", "list", "--node", "node1").stdout
    assert "198.51.100.0/24" in ipcache and f"{WORLD_A}/32" in ipcache


def test_from_entities_world_with_deny_precedence(clean: None) -> None:
    apply_policies(
        cnp(
            NS,
            "from-world",
            {
                "endpointSelector": {"matchLabels": {"app": "nginx"}},
                "ingress": [{"fromEntities": ["world", "cluster"]}],
                "ingressDeny": [
                    {"fromEndpoints": [{"matchLabels": {"app": "app2"}}]},
                    {"fromCIDR": [f"{WORLD_B}/32"]},
                ],
            },
        )
    )
    assert outcomes(
        f"world {NS}/nginx:80/TCP", f"{NS}/app1 {NS}/nginx:80/TCP", f"{NS}/app2 {NS}/nginx:80/TCP"
    ) == ["reachable", "reachable", "timeout"]


def test_l7_and_fqdn_rules_are_reported_not_silently_dropped(clean: None) -> None:
    policy = cnp(
        NS,
        "l7",
        {
            "endpointSelector": {"matchLabels": {"app": "nginx"}},
            "ingress": [
                {
                    "fromEndpoints": [{"matchLabels": {"app": "app1"}}],
                    "toPorts": [
                        {
                            "ports": [{"port": "80", "protocol": "TCP"}],
                            "rules": {"http": [{"method": "GET", "path": "/"}]},
                        }
                    ],
                }
            ],
        },
    )
    out = ax("policy", "import", "-f", "-", stdin=manifest(policy)).stdout
    assert "Warning:" in out and "http" in out and "not enforced" in out
    ax("policy", "wait", out.strip().splitlines()[-1].split()[-1], "--timeout", "30")
    # The L4 part is enforced: app1 reaches 80 but not 81, app2 nothing.
    assert outcomes(
        f"{NS}/app1 {NS}/nginx:80/TCP",
        f"{NS}/app1 {NS}/nginx:81/TCP",
        f"{NS}/app2 {NS}/nginx:80/TCP",
    ) == ["reachable", "timeout", "timeout"]


def test_unused_identities_are_garbage_collected(seed: None) -> None:
    apply(pod_manifest(NS, "short-lived", "node1", {"app": "short-lived"}, []))
    wait_pods(NS, {"short-lived"})
    assert "k8s:app=short-lived" in ax("identity", "list").stdout
    ax(
        "delete",
        "-f",
        "-",
        stdin=manifest(pod_manifest(NS, "short-lived", "node1", {"app": "short-lived"}, [])),
    )

    def collected() -> bool:
        ax("identity", "gc", "--grace", "0")
        return "k8s:app=short-lived" not in ax("identity", "list").stdout

    wait_for(collected, 30, "the identity to be collected")
    assert "k8s:app=nginx" in ax("identity", "list").stdout  # in use: kept
