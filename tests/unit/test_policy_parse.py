"""Policy parsing: the three kinds into the model, defaults and namespaces applied,
and every invalid document rejected with the path of the offending field."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.manifest import parse_manifest
from axoneme.policy.parse import parse_policy, policy_key, policy_warnings
from axoneme.policy.parse_cilium import SELECTS_NOTHING
from axoneme.policy.types import (
    CIDRPeer,
    Peers,
    Policy,
    PortProtocol,
    Requirement,
    Rule,
    Selector,
    ServicePeer,
)
from axoneme.store.types import KINDS, Key

NS = "k8s:io.kubernetes.pod.namespace"
NS_LABELS = "k8s:io.cilium.k8s.namespace.labels."


def eq(key: str, value: str) -> Requirement:
    return Requirement(key, "In", frozenset({value}))


def sel(*reqs: Requirement) -> Selector:
    return Selector(tuple(sorted(reqs, key=lambda r: (r.key, r.operator, sorted(r.values)))))


def in_ns(ns: str, *reqs: Requirement) -> Selector:
    return sel(*reqs, eq(NS, ns))


EXISTS = Requirement(NS, "Exists")


def one(raw: dict[str, Any]) -> Policy:
    policies = parse_policy(raw)
    assert len(policies) == 1
    return policies[0]


def from_yaml(text: str) -> Policy:
    """Through the manifest boundary (validate()) first, as ``apply`` reads it."""
    (obj,) = parse_manifest(text, "test.yaml")
    return one(obj)


def np(spec: dict[str, Any], ns: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": ns},
        "spec": spec,
    }


def cnp(spec: dict[str, Any], ns: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "cnp", "namespace": ns},
        "spec": spec,
    }


def ccnp(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "ccnp"},
        "spec": spec,
    }


WEB = {"matchLabels": {"app": "web"}}


# ---- the seed examples (cilium-evaluation-note.md), verbatim ---------------

# The note's first example elides parts with "..." lines, which YAML rejects;
# the test drops those lines and keeps the rest as written.
NOTE_EXAMPLE = """\
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: example
spec:
  endpointSelector:  # 作用的对象集合
    matchLabels:
      a: b
  ingress:          # 入方向
  - fromEndpoints:  # 从哪里来
    - matchLabels:
        c: d
  ...
  egress:           # 出方向
  - toEndpoints:    # 到哪里去
    - matchLabels:
        e: f
  ...
"""

NOTE_L3_LABELS = """\
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: l3-rule-allow-app1-to-nginx
spec:
  endpointSelector:
    matchLabels:
      app: nginx
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: app1
"""

NOTE_L3_SERVICE = """\
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: l3-rule-allow-app1-to-nginx-svc
spec:
  endpointSelector:
    matchLabels:
      app: app1
  egress:
  - toServices:
    - k8sService:
        serviceName: nginx
        namespace: default
"""

NOTE_ENTITIES = """\
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "app1-to-host"
spec:
  endpointSelector:
    matchLabels:
      app: app1
  egress:
    - toEntities:
      - host
"""

NOTE_L4 = """\
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "l4-rule"
spec:
  endpointSelector:
    matchLabels:
      app: app1
  egress:
    - toPorts:
      - ports:
        - port: "80"
          protocol: TCP
"""


def test_note_example_with_elisions_removed() -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(NOTE_EXAMPLE)
    text = "\n".join(line for line in NOTE_EXAMPLE.splitlines() if line.strip() != "...")
    p = from_yaml(text)
    assert (p.kind, p.namespace, p.name) == ("CiliumNetworkPolicy", "default", "example")
    assert p.subject == in_ns("default", eq("a", "b"))
    assert p.rules == (
        Rule("ingress", "allow", Peers(selectors=(in_ns("default", eq("c", "d")),))),
        Rule("egress", "allow", Peers(selectors=(in_ns("default", eq("e", "f")),))),
    )
    assert (p.default_deny_ingress, p.default_deny_egress) == (True, True)
    assert p.warnings == ()


def test_note_l3_labels() -> None:
    p = from_yaml(NOTE_L3_LABELS)
    assert p.subject == in_ns("default", eq("app", "nginx"))
    assert p.rules == (
        Rule("ingress", "allow", Peers(selectors=(in_ns("default", eq("app", "app1")),))),
    )
    assert (p.default_deny_ingress, p.default_deny_egress) == (True, False)


def test_note_to_services_names_the_service() -> None:
    p = from_yaml(NOTE_L3_SERVICE)
    assert p.subject == in_ns("default", eq("app", "app1"))
    peer = ServicePeer(name="nginx", namespace="default")
    assert p.rules == (Rule("egress", "allow", Peers(services=(peer,))),)
    assert (p.default_deny_ingress, p.default_deny_egress) == (False, True)
    assert p.warnings == ()


def test_note_to_entities_host() -> None:
    p = from_yaml(NOTE_ENTITIES)
    assert p.name == "app1-to-host"
    assert p.rules == (Rule("egress", "allow", Peers(entities=("host",))),)
    assert (p.default_deny_ingress, p.default_deny_egress) == (False, True)


def test_note_l4_only_rule_is_for_any_peer() -> None:
    p = from_yaml(NOTE_L4)
    assert p.rules == (
        Rule("egress", "allow", Peers(any_peer=True), (PortProtocol(80, 0, "TCP"),)),
    )


# ---- Kubernetes NetworkPolicy (shapes of the upstream netpol e2e suite) ------


def test_np_deny_all_ingress() -> None:
    p = one(np({"podSelector": {}, "policyTypes": ["Ingress"]}))
    assert p.subject == in_ns("demo")
    assert p.rules == ()
    assert (p.default_deny_ingress, p.default_deny_egress) == (True, False)


def test_np_default_policy_types_is_ingress_only() -> None:
    p = one(np({"podSelector": {}}))
    assert (p.default_deny_ingress, p.default_deny_egress) == (True, False)


def test_np_egress_rules_default_policy_types_to_both() -> None:
    p = one(np({"podSelector": WEB, "egress": [{}]}))
    assert (p.default_deny_ingress, p.default_deny_egress) == (True, True)
    assert p.rules == (Rule("egress", "allow", Peers(any_peer=True)),)
    assert p.subject == in_ns("demo", eq("k8s:app", "web"))


def test_np_deny_all_both_directions() -> None:
    p = one(np({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    assert (p.default_deny_ingress, p.default_deny_egress, p.rules) == (True, True, ())


def test_np_allow_all_ingress() -> None:
    p = one(np({"podSelector": {}, "ingress": [{}]}))
    assert p.rules == (Rule("ingress", "allow", Peers(any_peer=True)),)


def test_np_peer_pod_selector_gets_policy_namespace() -> None:
    p = one(np({"podSelector": WEB, "ingress": [{"from": [{"podSelector": {}}]}]}))
    assert p.rules[0].peers == Peers(selectors=(in_ns("demo"),))


def test_np_allow_from_namespace_by_name() -> None:
    ns_sel = {"matchLabels": {"kubernetes.io/metadata.name": "other"}}
    p = one(np({"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": ns_sel}]}]}))
    key = NS_LABELS + "kubernetes.io/metadata.name"
    assert p.rules[0].peers == Peers(selectors=(sel(eq(key, "other")),))


def test_np_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    peer = {
        "namespaceSelector": {
            "matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a", "b"]}]
        },
        "podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]},
    }
    p = one(np({"podSelector": {}, "ingress": [{"from": [peer]}]}))
    expected = sel(
        Requirement(NS_LABELS + "team", "NotIn", frozenset({"a", "b"})),
        Requirement("k8s:role", "Exists"),
    )
    assert p.rules[0].peers == Peers(selectors=(expected,))


def test_np_empty_namespace_selector_means_every_namespace() -> None:
    peers = [{"namespaceSelector": {}}, {"namespaceSelector": {}, "podSelector": WEB}]
    p = one(np({"podSelector": {}, "ingress": [{"from": peers}]}))
    assert p.rules[0].peers == Peers(selectors=(sel(EXISTS), sel(EXISTS, eq("k8s:app", "web"))))


def test_np_ip_block_with_except_matches_pods_and_masks_host_bits() -> None:
    block = {"cidr": "10.0.0.1/8", "except": ["10.1.0.0/16", "10.2.3.0/24"]}
    p = one(np({"podSelector": {}, "egress": [{"to": [{"ipBlock": block}]}]}))
    cidr = CIDRPeer("10.0.0.0/8", ("10.1.0.0/16", "10.2.3.0/24"), match_pods=True)
    assert p.rules == (Rule("egress", "allow", Peers(cidrs=(cidr,))),)


def test_np_peers_of_one_rule_are_a_union() -> None:
    peers = [{"podSelector": WEB}, {"ipBlock": {"cidr": "fd00::/64"}}]
    p = one(np({"podSelector": {}, "ingress": [{"from": peers}]}))
    assert p.rules[0].peers == Peers(
        selectors=(in_ns("demo", eq("k8s:app", "web")),),
        cidrs=(CIDRPeer("fd00::/64", (), True),),
    )


def test_np_ports_named_ranges_protocols() -> None:
    ports = [
        {"port": "serve-80"},
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 8000, "endPort": 8080},
        {"protocol": "SCTP"},
        {"port": 81, "endPort": 81},
    ]
    p = one(np({"podSelector": {}, "ingress": [{"ports": ports}]}))
    assert p.rules[0].ports == (
        PortProtocol(0, 0, "TCP", "serve-80"),
        PortProtocol(53, 0, "UDP"),
        PortProtocol(8000, 8080, "TCP"),
        PortProtocol(0, 0, "SCTP"),
        PortProtocol(81, 0, "TCP"),
    )
    assert p.rules[0].peers == Peers(any_peer=True)


def test_np_egress_to_dns_in_any_namespace() -> None:
    rule = {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    p = one(np({"podSelector": {}, "policyTypes": ["Egress"], "egress": [rule]}))
    assert (p.default_deny_ingress, p.default_deny_egress) == (False, True)
    assert p.rules == (
        Rule(
            "egress",
            "allow",
            Peers(selectors=(sel(EXISTS, eq("k8s:k8s-app", "kube-dns")),)),
            (PortProtocol(53, 0, "UDP"), PortProtocol(53, 0, "TCP")),
        ),
    )


def test_np_rules_of_a_direction_not_in_policy_types_are_ignored() -> None:
    p = one(np({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]}))
    assert (p.rules, p.default_deny_egress) == ((), False)
    assert p.warnings == ("spec.egress: ignored, policyTypes does not include Egress",)


def test_np_namespace_is_the_policy_namespace_whatever_the_selector_says() -> None:
    pods = {"matchLabels": {"io.kubernetes.pod.namespace": "other", "app": "web"}}
    p = one(np({"podSelector": pods, "ingress": [{"from": [{"podSelector": pods}]}]}))
    assert p.subject == in_ns("demo", eq("k8s:app", "web"))
    assert p.rules[0].peers.selectors == (in_ns("demo", eq("k8s:app", "web")),)


def test_np_rule_index_is_the_position_in_its_list() -> None:
    p = one(np({"podSelector": {}, "ingress": [{}, {}], "egress": [{}]}))
    assert [(r.direction, r.index) for r in p.rules] == [
        ("ingress", 0),
        ("ingress", 1),
        ("egress", 0),
    ]


# ---- CiliumNetworkPolicy ---------------------------------------------------


def test_cnp_entities_are_checked_and_deduplicated() -> None:
    p = one(
        cnp({"endpointSelector": {}, "ingress": [{"fromEntities": ["world", "cluster", "world"]}]})
    )
    assert p.subject == in_ns("demo")
    assert p.rules[0].peers == Peers(entities=("world", "cluster"))


def test_cnp_cidr_and_cidr_set() -> None:
    spec = {
        "endpointSelector": WEB,
        "egress": [
            {"toCIDR": ["192.0.2.1", "2001:db8::/32"]},
            {"toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12", "10.0.0.0/8"]}]},
        ],
    }
    p = one(cnp(spec))
    assert p.rules[0].peers == Peers(cidrs=(CIDRPeer("192.0.2.1/32"), CIDRPeer("2001:db8::/32")))
    assert p.rules[1].peers == Peers(
        cidrs=(CIDRPeer("10.0.0.0/8", ("10.96.0.0/12", "10.0.0.0/8")),)
    )
    assert not p.rules[0].peers.cidrs[0].match_pods


def test_cnp_deny_rules_and_default_deny() -> None:
    spec = {
        "endpointSelector": {},
        "ingress": [{"fromEntities": ["all"]}],
        "ingressDeny": [
            {"fromEntities": ["world"]},
            {"toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]},
        ],
    }
    p = one(cnp(spec))
    assert p.rules == (
        Rule("ingress", "allow", Peers(entities=("all",))),
        Rule("ingress", "deny", Peers(entities=("world",))),
        Rule("ingress", "deny", Peers(any_peer=True), (PortProtocol(80, 0, "TCP"),), index=1),
    )
    assert (p.default_deny_ingress, p.default_deny_egress) == (True, False)


def test_cnp_deny_alone_still_turns_on_default_deny() -> None:
    p = one(cnp({"endpointSelector": {}, "egressDeny": [{"toEntities": ["world"]}]}))
    assert (p.default_deny_ingress, p.default_deny_egress) == (False, True)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, (True, True)),
        ({"ingress": False}, (False, True)),
        ({"egress": False}, (True, False)),
        ({"ingress": True, "egress": True}, (True, True)),
        ({"ingress": False, "egress": False}, (False, False)),
    ],
)
def test_cnp_enable_default_deny(
    setting: dict[str, bool] | None, expected: tuple[bool, bool]
) -> None:
    spec: dict[str, Any] = {"endpointSelector": {}, "ingress": [{}], "egress": [{}]}
    if setting is not None:
        spec["enableDefaultDeny"] = setting
    p = one(cnp(spec))
    assert (p.default_deny_ingress, p.default_deny_egress) == expected


def test_cnp_enable_default_deny_without_rules_has_no_effect() -> None:
    spec = {
        "endpointSelector": {},
        "egress": [{"toEntities": ["world"]}],
        "enableDefaultDeny": {"ingress": True},
    }
    p = one(cnp(spec))
    assert (p.default_deny_ingress, p.default_deny_egress) == (False, True)
    assert p.warnings[0].startswith("spec.enableDefaultDeny.ingress: has no effect")


def test_cnp_empty_entry_allows_nothing_but_counts_for_default_deny() -> None:
    p = one(cnp({"endpointSelector": {}, "ingress": [{}]}))
    assert p.rules == (Rule("ingress", "allow", Peers()),)
    assert p.default_deny_ingress


def test_cnp_ports_wildcards_names_and_ranges() -> None:
    ports = [
        {"port": "0"},
        {"port": ""},
        {"port": "HTTP-Alt", "protocol": "TCP"},
        {"port": 53, "protocol": "UDP"},
        {"port": "8000", "endPort": 8100, "protocol": "SCTP"},
        {"port": "9000", "endPort": 0},
    ]
    p = one(cnp({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": ports}]}]}))
    assert p.rules[0].ports == (
        PortProtocol(0, 0, "ANY"),
        PortProtocol(0, 0, "ANY"),
        PortProtocol(0, 0, "TCP", "http-alt"),
        PortProtocol(53, 0, "UDP"),
        PortProtocol(8000, 8100, "SCTP"),
        PortProtocol(9000, 0, "ANY"),
    )


def test_cnp_to_ports_without_ports_matches_nothing() -> None:
    p = one(cnp({"endpointSelector": {}, "egress": [{"toEntities": ["world"], "toPorts": [{}]}]}))
    assert p.rules == (Rule("egress", "allow", Peers()),)
    assert p.warnings == ("spec.egress[0].toPorts: lists no ports; the entry allows nothing",)


def test_cnp_l7_rules_are_recorded_and_l4_still_enforced() -> None:
    spec = {
        "endpointSelector": {},
        "ingress": [
            {
                "fromEndpoints": [WEB],
                "toPorts": [
                    {
                        "ports": [{"port": "80", "protocol": "TCP"}],
                        "rules": {"http": [{"method": "GET", "path": "/public"}]},
                    }
                ],
            }
        ],
        "egress": [
            {
                "toEndpoints": [{"matchLabels": {"k8s:k8s-app": "kube-dns"}}],
                "toPorts": [
                    {
                        "ports": [{"port": "53", "protocol": "ANY"}],
                        "rules": {"dns": [{"matchPattern": "*"}]},
                    }
                ],
            }
        ],
    }
    p = one(cnp(spec))
    ingress, egress = p.rules
    assert ingress.ports == (PortProtocol(80, 0, "TCP"),)
    assert ingress.not_enforced == ("toPorts[0].rules.http",)
    assert ingress.peers == Peers(selectors=(in_ns("demo", eq("app", "web")),))
    assert egress.not_enforced == ("toPorts[0].rules.dns",)
    assert egress.peers == Peers(selectors=(in_ns("demo", eq("k8s:k8s-app", "kube-dns")),))
    assert [w.split(":")[0] for w in p.warnings] == [
        "spec.ingress[0].toPorts[0].rules.http",
        "spec.egress[0].toPorts[0].rules.dns",
    ]


def test_cnp_to_fqdns_allows_nothing_yet() -> None:
    spec = {
        "endpointSelector": {},
        "egress": [
            {
                "toFQDNs": [{"matchName": "api.example.com"}, {"matchPattern": "**.cilium.io"}],
                "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}],
            }
        ],
    }
    p = one(cnp(spec))
    assert p.rules == (
        Rule("egress", "allow", Peers(), (PortProtocol(443, 0, "TCP"),), ("toFQDNs",)),
    )
    assert "spec.egress[0].toFQDNs" in p.warnings[0]


def test_cnp_icmps_are_not_enforced_and_match_nothing() -> None:
    icmps = [{"fields": [{"type": 8, "family": "IPv4"}, {"type": "EchoRequest", "family": "IPv6"}]}]
    spec = {"endpointSelector": {}, "ingressDeny": [{"fromEntities": ["world"], "icmps": icmps}]}
    p = one(cnp(spec))
    assert p.rules == (Rule("ingress", "deny", Peers(), not_enforced=("icmps",)),)
    assert "denies nothing" in p.warnings[0]


def test_cnp_specs_give_one_policy_each() -> None:
    raw = cnp({})
    del raw["spec"]
    raw["specs"] = [
        {"endpointSelector": WEB, "ingress": [{}]},
        {"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]},
    ]
    first, second = parse_policy(raw)
    assert (first.spec_index, second.spec_index) == (0, 1)
    assert first.name == second.name == "cnp"
    assert (first.default_deny_ingress, second.default_deny_egress) == (True, True)
    assert second.rules[0].peers.entities == ("world",)


def test_cnp_peer_namespace_defaulting() -> None:
    peers = [
        {},
        {"matchLabels": {"io.kubernetes.pod.namespace": "other", "app": "db"}},
        {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "other"}},
        {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "a"}},
        {"matchLabels": {"reserved:host": ""}},
        {"matchLabels": {"any:app": "x"}},
        {"matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "Exists"}]},
    ]
    p = one(cnp({"endpointSelector": {}, "ingress": [{"fromEndpoints": peers}]}))
    assert p.rules[0].peers.selectors == (
        in_ns("demo"),
        sel(eq("io.kubernetes.pod.namespace", "other"), eq("app", "db")),
        sel(eq(NS, "other")),
        sel(eq("io.cilium.k8s.namespace.labels.team", "a")),
        sel(eq("reserved:host", "")),
        in_ns("demo", eq("any:app", "x")),
        sel(Requirement("io.kubernetes.pod.namespace", "Exists")),
    )


def test_cnp_endpoint_selector_always_in_the_policy_namespace() -> None:
    same = one(
        cnp(
            {
                "endpointSelector": {"matchLabels": {"io.kubernetes.pod.namespace": "demo"}},
                "ingress": [{}],
            }
        )
    )
    assert same.subject == in_ns("demo")
    assert same.warnings == ()
    other = one(
        cnp(
            {
                "endpointSelector": {
                    "matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system", "app": "x"}
                },
                "ingress": [{}],
            }
        )
    )
    assert other.subject == in_ns("demo", eq("app", "x"))
    assert other.warnings[0].startswith("spec.endpointSelector: a namespace requirement")


def test_cnp_selector_spellings_compare_equal() -> None:
    a = {"matchLabels": {"app": "x", "tier": "db"}}
    b = {
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}],
        "matchLabels": {"app": "x"},
    }
    pa = one(cnp({"endpointSelector": a, "ingress": [{}]}))
    pb = one(cnp({"endpointSelector": b, "ingress": [{}]}))
    assert pa.subject == pb.subject


# ---- CiliumClusterwideNetworkPolicy ------------------------------------------


def test_ccnp_namespace_defaulting() -> None:
    peers = [
        {},
        WEB,
        {"matchLabels": {"io.kubernetes.pod.namespace": "kube-system"}},
        {"matchLabels": {"reserved:init": ""}},
    ]
    p = one(ccnp({"endpointSelector": WEB, "egress": [{"toEndpoints": peers}]}))
    assert (p.kind, p.namespace, p.ref) == (
        "CiliumClusterwideNetworkPolicy",
        "",
        "CiliumClusterwideNetworkPolicy/ccnp",
    )
    assert p.subject == sel(eq("app", "web"))
    assert p.rules[0].peers.selectors == (
        sel(EXISTS),
        sel(EXISTS, eq("app", "web")),
        sel(eq("io.kubernetes.pod.namespace", "kube-system")),
        sel(eq("reserved:init", "")),
    )


def test_ccnp_empty_endpoint_selector_selects_everything() -> None:
    p = one(ccnp({"endpointSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]}))
    assert p.subject == Selector()


def test_ccnp_host_policy_is_accepted_but_selects_nothing() -> None:
    spec = {
        "nodeSelector": {"matchLabels": {"node-role.kubernetes.io/control-plane": ""}},
        "ingress": [{"fromEntities": ["cluster"]}],
    }
    p = one(ccnp(spec))
    assert p.subject == SELECTS_NOTHING
    assert p.rules == (Rule("ingress", "allow", Peers(entities=("cluster",))),)
    assert any("host policies (nodeSelector) are not enforced yet" in w for w in p.warnings)


def test_ccnp_metadata_namespace_is_ignored_with_a_warning() -> None:
    raw = ccnp({"endpointSelector": {}, "ingress": [{}]})
    raw["metadata"]["namespace"] = "demo"
    p = one(raw)
    assert p.namespace == ""
    assert p.warnings == ("metadata.namespace: ignored, the kind is cluster-scoped",)


# ---- keys, warnings, the manifest boundary ------------------------------------


def test_policy_key_for_every_kind() -> None:
    raw = np({"podSelector": {}})
    del raw["metadata"]["namespace"]
    assert policy_key(raw) == ("NetworkPolicy", "default", "np")
    assert policy_key(cnp({})) == ("CiliumNetworkPolicy", "demo", "cnp")
    assert policy_key(ccnp({})) == ("CiliumClusterwideNetworkPolicy", "", "ccnp")
    with pytest.raises(ValidationError) as err:
        policy_key({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
    assert err.value.field == "kind"


def test_policy_warnings_are_prefixed_and_deduplicated() -> None:
    raw = ccnp({})
    del raw["spec"]
    raw["metadata"]["namespace"] = "x"
    raw["specs"] = [
        {"endpointSelector": {}, "egress": [{"toFQDNs": [{"matchName": "a.io"}]}]},
        {"endpointSelector": {}, "ingress": [{}]},
    ]
    lines = policy_warnings(parse_policy(raw))
    assert lines == (
        "CiliumClusterwideNetworkPolicy/ccnp: metadata.namespace: ignored,"
        " the kind is cluster-scoped",
        "CiliumClusterwideNetworkPolicy/ccnp: specs[0].egress[0].toFQDNs: accepted but not"
        " enforced yet; the entry allows nothing until DNS-based policy is implemented",
    )


def test_manifest_boundary_defaults_namespace_and_stores_by_kind() -> None:
    text = yaml.safe_dump_all(
        [
            {**np({"podSelector": {}}), "metadata": {"name": "a"}},
            {**cnp({"endpointSelector": {}, "ingress": [{}]}), "metadata": {"name": "b"}},
            ccnp({"endpointSelector": {}, "ingress": [{}]}),
        ]
    )
    objs = parse_manifest(text, "policies.yaml")
    assert [o["metadata"].get("namespace") for o in objs] == ["default", "default", None]
    assert [Key.of(o).path("/axo") for o in objs] == [
        "/axo/networkpolicies/default/a",
        "/axo/ciliumnetworkpolicies/default/b",
        "/axo/ciliumclusterwidenetworkpolicies/ccnp",
    ]
    assert KINDS["CiliumClusterwideNetworkPolicy"] == ("ciliumclusterwidenetworkpolicies", False)


def test_manifest_boundary_reports_the_policy_field() -> None:
    raw = cnp({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [{"port": "99999"}]}]}]})
    with pytest.raises(ValidationError) as err:
        parse_manifest(yaml.safe_dump(raw), "bad.yaml")
    assert err.value.field == "spec.ingress[0].toPorts[0].ports[0].port"
    assert err.value.source == "bad.yaml (object 1)"


# ---- bad documents: each names its field ------------------------------------


def _np_ingress_port(port: dict[str, Any]) -> dict[str, Any]:
    return np({"podSelector": {}, "ingress": [{"ports": [port]}]})


def _cnp_port(port: dict[str, Any], **rule: Any) -> dict[str, Any]:
    return cnp({"endpointSelector": {}, "ingress": [{"toPorts": [{"ports": [port], **rule}]}]})


def _cnp_in(entry: dict[str, Any], key: str = "ingress") -> dict[str, Any]:
    return cnp({"endpointSelector": {}, key: [entry]})


def _with(raw: dict[str, Any], **top: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


BAD: list[tuple[str, Any, str]] = [
    # documents and metadata
    ("not an object", ["x"], "(document)"),
    ("unknown kind", {"apiVersion": "v1", "kind": "Service"}, "kind"),
    (
        "np apiVersion",
        _with(np({"podSelector": {}}), apiVersion="networking.k8s.io/v1beta1"),
        "apiVersion",
    ),
    ("ccnp apiVersion", _with(ccnp({}), apiVersion="cilium.io/v1"), "apiVersion"),
    ("unknown top field", _with(np({"podSelector": {}}), specs=[]), "specs"),
    ("bad name", {**np({"podSelector": {}}), "metadata": {"name": "Bad_Name"}}, "metadata.name"),
    ("missing name", {**cnp({}), "metadata": {"namespace": "x"}}, "metadata.name"),
    ("bad namespace", np({"podSelector": {}}, ns="Demo"), "metadata.namespace"),
    # NetworkPolicy
    ("np no spec", _with(np({}), spec=None), "spec"),
    ("np no podSelector", np({"ingress": [{}]}), "spec.podSelector"),
    ("np unknown spec field", np({"podSelector": {}, "ingres": []}), "spec.ingres"),
    (
        "np policyTypes value",
        np({"podSelector": {}, "policyTypes": ["ingress"]}),
        "spec.policyTypes[0]",
    ),
    (
        "np policyTypes dup",
        np({"podSelector": {}, "policyTypes": ["Egress", "Egress"]}),
        "spec.policyTypes[1]",
    ),
    ("np ingress not list", np({"podSelector": {}, "ingress": {"from": []}}), "spec.ingress"),
    (
        "np unknown rule field",
        np({"podSelector": {}, "ingress": [{"to": []}]}),
        "spec.ingress[0].to",
    ),
    (
        "np empty peer",
        np({"podSelector": {}, "ingress": [{"from": [{}]}]}),
        "spec.ingress[0].from[0]",
    ),
    (
        "np ipBlock with selector",
        np(
            {
                "podSelector": {},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
            }
        ),
        "spec.ingress[0].from[0].ipBlock",
    ),
    (
        "np ipBlock bad cidr",
        np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
        "spec.egress[0].to[0].ipBlock.cidr",
    ),
    (
        "np ipBlock bare address",
        np({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]}),
        "spec.egress[0].to[0].ipBlock.cidr",
    ),
    (
        "np except outside",
        np(
            {
                "podSelector": {},
                "egress": [
                    {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}
                ],
            }
        ),
        "spec.egress[0].to[0].ipBlock.except[0]",
    ),
    (
        "np except equal to cidr",
        np(
            {
                "podSelector": {},
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}],
            }
        ),
        "spec.egress[0].to[0].ipBlock.except[0]",
    ),
    ("np protocol", _np_ingress_port({"protocol": "ICMP"}), "spec.ingress[0].ports[0].protocol"),
    ("np port 0", _np_ingress_port({"port": 0}), "spec.ingress[0].ports[0].port"),
    ("np port string number", _np_ingress_port({"port": "80"}), "spec.ingress[0].ports[0].port"),
    (
        "np port name too long",
        _np_ingress_port({"port": "a-very-long-port-name"}),
        "spec.ingress[0].ports[0].port",
    ),
    (
        "np endPort named",
        _np_ingress_port({"port": "http", "endPort": 90}),
        "spec.ingress[0].ports[0].endPort",
    ),
    ("np endPort no port", _np_ingress_port({"endPort": 90}), "spec.ingress[0].ports[0].endPort"),
    (
        "np endPort below port",
        _np_ingress_port({"port": 90, "endPort": 80}),
        "spec.ingress[0].ports[0].endPort",
    ),
    (
        "np In without values",
        np({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
        "spec.podSelector.matchExpressions[0].values",
    ),
    (
        "np Exists with values",
        np(
            {
                "podSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            }
        ),
        "spec.podSelector.matchExpressions[0].values",
    ),
    (
        "np bad operator",
        np(
            {
                "podSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]
                }
            }
        ),
        "spec.podSelector.matchExpressions[0].operator",
    ),
    (
        "np label value",
        np({"podSelector": {"matchLabels": {"app": "a b"}}}),
        "spec.podSelector.matchLabels['app']",
    ),
    (
        "np source prefix not allowed",
        np({"podSelector": {"matchLabels": {"k8s:app": "a"}}}),
        "spec.podSelector.matchLabels['k8s:app']",
    ),
    (
        "np namespaceSelector key",
        np(
            {
                "podSelector": {},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"-x": "y"}}}]}],
            }
        ),
        "spec.ingress[0].from[0].namespaceSelector.matchLabels['-x']",
    ),
    # CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy
    (
        "cnp spec and specs",
        _with(cnp({"endpointSelector": {}, "ingress": [{}]}), specs=[{}]),
        "specs",
    ),
    ("cnp neither spec", _with(cnp({}), spec=None), "spec"),
    ("cnp empty specs", _with(cnp({}), spec=None, specs=[]), "specs"),
    ("cnp unknown spec field", cnp({"endpointSelector": {}, "ingresss": [{}]}), "spec.ingresss"),
    ("cnp no rules", cnp({"endpointSelector": WEB}), "spec"),
    ("cnp no endpointSelector", cnp({"ingress": [{}]}), "spec.endpointSelector"),
    ("cnp nodeSelector", cnp({"nodeSelector": {}, "ingress": [{}]}), "spec.nodeSelector"),
    (
        "ccnp both selectors",
        ccnp({"nodeSelector": {}, "endpointSelector": {}, "ingress": [{}]}),
        "spec.nodeSelector",
    ),
    (
        "cnp unknown source",
        cnp({"endpointSelector": {"matchLabels": {"foo:app": "x"}}, "ingress": [{}]}),
        "spec.endpointSelector.matchLabels['foo:app']",
    ),
    ("cnp port too big", _cnp_port({"port": "70000"}), "spec.ingress[0].toPorts[0].ports[0].port"),
    ("cnp port bad name", _cnp_port({"port": "-bad"}), "spec.ingress[0].toPorts[0].ports[0].port"),
    ("cnp port wrong type", _cnp_port({"port": [80]}), "spec.ingress[0].toPorts[0].ports[0].port"),
    (
        "cnp endPort port 0",
        _cnp_port({"port": "0", "endPort": 100}),
        "spec.ingress[0].toPorts[0].ports[0].endPort",
    ),
    (
        "cnp endPort named",
        _cnp_port({"port": "http", "endPort": 100}),
        "spec.ingress[0].toPorts[0].ports[0].endPort",
    ),
    (
        "cnp endPort below",
        _cnp_port({"port": "100", "endPort": 99}),
        "spec.ingress[0].toPorts[0].ports[0].endPort",
    ),
    (
        "cnp protocol ICMP",
        _cnp_port({"port": "80", "protocol": "ICMP"}),
        "spec.ingress[0].toPorts[0].ports[0].protocol",
    ),
    (
        "cnp protocol lower",
        _cnp_port({"port": "80", "protocol": "tcp"}),
        "spec.ingress[0].toPorts[0].ports[0].protocol",
    ),
    (
        "cnp unknown port field",
        _cnp_port({"port": "80", "proto": "TCP"}),
        "spec.ingress[0].toPorts[0].ports[0].proto",
    ),
    (
        "cnp too many ports",
        cnp(
            {
                "endpointSelector": {},
                "ingress": [{"toPorts": [{"ports": [{"port": str(p)} for p in range(1, 42)]}]}],
            }
        ),
        "spec.ingress[0].toPorts[0].ports",
    ),
    (
        "cnp L7 on port 0",
        _cnp_port({"port": "0", "protocol": "TCP"}, rules={"http": [{}]}),
        "spec.ingress[0].toPorts[0].ports[0].port",
    ),
    (
        "cnp http on UDP",
        _cnp_port({"port": "80", "protocol": "UDP"}, rules={"http": [{}]}),
        "spec.ingress[0].toPorts[0].ports[0].protocol",
    ),
    (
        "cnp dns on ingress",
        _cnp_port({"port": "53", "protocol": "UDP"}, rules={"dns": [{"matchName": "a.io"}]}),
        "spec.ingress[0].toPorts[0].rules.dns",
    ),
    (
        "cnp two L7 kinds",
        _cnp_port({"port": "80", "protocol": "TCP"}, rules={"http": [{}], "kafka": [{}]}),
        "spec.ingress[0].toPorts[0].rules.kafka",
    ),
    (
        "cnp unknown entity",
        _cnp_in({"toEntities": ["world", "internet"]}, "egress"),
        "spec.egress[0].toEntities[1]",
    ),
    ("cnp bad cidr", _cnp_in({"fromCIDR": ["10.0.0.0/40"]}), "spec.ingress[0].fromCIDR[0]"),
    (
        "cnp cidrGroupRef",
        _cnp_in({"toCIDRSet": [{"cidrGroupRef": "group-a"}]}, "egress"),
        "spec.egress[0].toCIDRSet[0].cidrGroupRef",
    ),
    (
        "cnp except outside",
        _cnp_in({"toCIDRSet": [{"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}]}, "egress"),
        "spec.egress[0].toCIDRSet[0].except[0]",
    ),
    (
        "cnp except other family",
        _cnp_in({"toCIDRSet": [{"cidr": "10.0.0.0/16", "except": ["fd00::/64"]}]}, "egress"),
        "spec.egress[0].toCIDRSet[0].except[0]",
    ),
    ("cnp fromRequires", _cnp_in({"fromRequires": [WEB]}), "spec.ingress[0].fromRequires"),
    (
        "cnp mixed L3 kinds",
        _cnp_in({"fromEndpoints": [WEB], "fromCIDR": ["10.0.0.0/8"]}),
        "spec.ingress[0].fromCIDR",
    ),
    (
        "cnp fqdn with endpoints",
        _cnp_in({"toEndpoints": [WEB], "toFQDNs": [{"matchName": "a.io"}]}, "egress"),
        "spec.egress[0].toFQDNs",
    ),
    (
        "cnp icmps with toPorts",
        _cnp_in({"icmps": [{"fields": [{"type": 8}]}], "toPorts": [{"ports": [{"port": "80"}]}]}),
        "spec.ingress[0].icmps",
    ),
    (
        "cnp icmp type",
        _cnp_in({"icmps": [{"fields": [{"type": 300}]}]}),
        "spec.ingress[0].icmps[0].fields[0].type",
    ),
    ("cnp fromNodes", _cnp_in({"fromNodes": [WEB]}), "spec.ingress[0].fromNodes"),
    (
        "cnp toFQDNs in deny",
        _cnp_in({"toFQDNs": [{"matchName": "a.io"}]}, "egressDeny"),
        "spec.egressDeny[0].toFQDNs",
    ),
    (
        "cnp L7 in deny",
        _cnp_in({"toPorts": [{"ports": [{"port": "80"}], "rules": {"http": [{}]}}]}, "ingressDeny"),
        "spec.ingressDeny[0].toPorts[0].rules",
    ),
    (
        "cnp fqdn both",
        _cnp_in({"toFQDNs": [{"matchName": "a.io", "matchPattern": "*.a.io"}]}, "egress"),
        "spec.egress[0].toFQDNs[0]",
    ),
    (
        "cnp fqdn pattern",
        _cnp_in({"toFQDNs": [{"matchName": "a b.io"}]}, "egress"),
        "spec.egress[0].toFQDNs[0].matchName",
    ),
    (
        "cnp toServices without name",
        _cnp_in({"toServices": [{"k8sService": {"namespace": "default"}}]}, "egress"),
        "spec.egress[0].toServices[0].k8sService.serviceName",
    ),
    (
        "cnp enableDefaultDeny type",
        cnp({"endpointSelector": {}, "ingress": [{}], "enableDefaultDeny": {"ingress": "yes"}}),
        "spec.enableDefaultDeny.ingress",
    ),
    (
        "cnp selector In without values",
        _cnp_in(
            {
                "fromEndpoints": [
                    {"matchExpressions": [{"key": "k8s:app", "operator": "NotIn", "values": []}]}
                ]
            }
        ),
        "spec.ingress[0].fromEndpoints[0].matchExpressions[0].values",
    ),
    (
        "cnp specs path",
        _with(
            cnp({}),
            spec=None,
            specs=[
                {"endpointSelector": {}, "ingress": [{}]},
                {
                    "endpointSelector": {},
                    "egress": [{"toPorts": [{"ports": [{"port": "1", "protocol": "XTP"}]}]}],
                },
            ],
        ),
        "specs[1].egress[0].toPorts[0].ports[0].protocol",
    ),
    (
        "cnp description type",
        cnp({"endpointSelector": {}, "ingress": [{}], "description": 5}),
        "spec.description",
    ),
    (
        "cnp labels entry",
        cnp({"endpointSelector": {}, "ingress": [{}], "labels": [{"value": "x"}]}),
        "spec.labels[0].key",
    ),
]


@pytest.mark.parametrize(
    ("raw", "field"), [(raw, field) for _, raw, field in BAD], ids=[b[0] for b in BAD]
)
def test_bad_document_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_policy(raw)
    assert err.value.field == field, err.value


# ---- robustness: any JSON in a spec is a policy or a ValidationError ----------

_FIELDS = [
    "podSelector",
    "policyTypes",
    "ingress",
    "egress",
    "from",
    "to",
    "ports",
    "port",
    "endPort",
    "protocol",
    "namespaceSelector",
    "ipBlock",
    "cidr",
    "except",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "endpointSelector",
    "nodeSelector",
    "ingressDeny",
    "egressDeny",
    "fromEndpoints",
    "toEndpoints",
    "fromEntities",
    "toEntities",
    "fromCIDR",
    "toCIDRSet",
    "toPorts",
    "rules",
    "http",
    "dns",
    "toFQDNs",
    "matchName",
    "toServices",
    "icmps",
    "fields",
    "type",
    "enableDefaultDeny",
    "labels",
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.sampled_from(
        ["", "0", "80", "TCP", "ANY", "http", "In", "Exists", "10.0.0.0/8", "world", "Ingress"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_FIELDS), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(spec=_JSON, kind=st.sampled_from(["np", "cnp", "ccnp"]))
def test_arbitrary_specs_never_raise_anything_but_validation_errors(spec: Any, kind: str) -> None:
    raw = {"np": np, "cnp": cnp, "ccnp": ccnp}[kind]({})
    raw["spec"] = spec
    with contextlib.suppress(ValidationError):
        parse_policy(raw)
