"""Policy enforced in the kernel, checked with real traffic over the upstream model.

Each case applies policies, waits for every node to run them, then probes the
whole 9x9 pod matrix (72 pairs) and compares it with a hand-written expectation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from privileged import netpol_model as m

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ALL_PODS: dict[str, Any] = {"podSelector": {}}


@pytest.fixture(scope="module")
def model(lab: dict[str, Any]) -> dict[str, str]:
    return m.deploy()


@pytest.fixture
def clean(model: dict[str, str]) -> Iterator[dict[str, str]]:
    m.clear_policies()
    yield model
    m.clear_policies()


def everything(src: str, dst: str) -> bool:
    return True


def test_no_policy_everything_reaches_everything(clean: dict[str, str]) -> None:
    for proto in m.PROTOCOLS:
        m.check(everything, 80, proto)


def test_deny_all_ingress_in_x(clean: dict[str, str]) -> None:
    m.apply_policies(m.netpol("x", "deny-all", {**ALL_PODS, "policyTypes": ["Ingress"]}))
    for proto in m.PROTOCOLS:
        m.check(lambda s, d: m.ns_of(d) != "x", 80, proto)


def test_allow_ingress_to_xa_from_same_namespace_pod_b(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.netpol(
            "x",
            "allow-b",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            },
        )
    )
    m.check(lambda s, d: d != "x/a" or s == "x/b")


def test_allow_ingress_from_namespace_y(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.netpol(
            "x",
            "from-y",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}],
            },
        )
    )
    m.check(lambda s, d: d != "x/a" or m.ns_of(s) == "y")


def test_namespace_and_pod_selector_together(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.netpol(
            "x",
            "y-c",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [
                                        {"key": "ns", "operator": "In", "values": ["y", "z"]}
                                    ]
                                },
                                "podSelector": {"matchLabels": {"pod": "c"}},
                            }
                        ]
                    }
                ],
            },
        )
    )
    m.check(lambda s, d: d != "x/a" or s in ("y/c", "z/c"))


def test_port_81_only(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.netpol(
            "x",
            "port-81",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"ports": [{"port": 81, "protocol": "TCP"}]}],
            },
        )
    )
    m.check(lambda s, d: d != "x/a", 80, "TCP")
    m.check(everything, 81, "TCP")
    m.check(lambda s, d: d != "x/a", 81, "UDP")


def test_named_port_and_end_port(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.netpol(
            "x",
            "named",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}],
            },
        ),
        m.netpol(
            "x",
            "range",
            {
                "podSelector": {"matchLabels": {"pod": "b"}},
                "ingress": [{"ports": [{"port": 80, "endPort": 81, "protocol": "SCTP"}]}],
            },
        ),
    )
    m.check(lambda s, d: d not in ("x/a", "x/b"), 80, "TCP")
    m.check(lambda s, d: d != "x/b", 81, "UDP")
    m.check(lambda s, d: d != "x/a", 81, "SCTP")


def test_egress_only_to_namespace_y(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.netpol(
            "x",
            "egress-y",
            {
                **ALL_PODS,
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}],
            },
        )
    )
    m.check(lambda s, d: m.ns_of(s) != "x" or m.ns_of(d) == "y")


def test_ip_block_selects_pod_ips_with_except(clean: dict[str, str]) -> None:
    ips = clean
    # z/b runs on node2; allow node2's whole pod CIDR except z/b itself.
    m.apply_policies(
        m.netpol(
            "x",
            "ipblock",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [
                    {
                        "from": [
                            {"ipBlock": {"cidr": "10.42.2.0/24", "except": [f"{ips['z/b']}/32"]}}
                        ]
                    }
                ],
            },
        )
    )
    m.check(lambda s, d: d != "x/a" or (m.pod_of(s) == "b" and s != "z/b"))


def test_cnp_deny_wins_over_allow(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.cnp(
            "x",
            "allow-all-deny-y",
            {
                "endpointSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"fromEntities": ["all"]}],
                "ingressDeny": [
                    {"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "y"}}]}
                ],
            },
        )
    )
    m.check(lambda s, d: d != "x/a" or m.ns_of(s) != "y")


def test_cnp_l4_deny_on_one_port_keeps_the_other(clean: dict[str, str]) -> None:
    m.apply_policies(
        m.cnp(
            "x",
            "l3-allow-l4-deny",
            {
                "endpointSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"pod": "b"}}]}],
                "ingressDeny": [{"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}],
            },
        )
    )
    m.check(lambda s, d: d != "x/a", 80, "TCP")
    m.check(lambda s, d: d != "x/a" or s == "x/b", 81, "TCP")


def test_established_connections_and_replies_pass(clean: dict[str, str]) -> None:
    # x/a may only talk out to y; replies from y must come back even though
    # nothing allows ingress into x/a (stateful conntrack).
    m.apply_policies(
        m.netpol(
            "x",
            "a-locked",
            {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "policyTypes": ["Ingress", "Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}],
            },
        )
    )
    m.check(lambda s, d: (s != "x/a" or m.ns_of(d) == "y") and d != "x/a")
