"""resolve(): policies → EndpointPolicy, checked on its tables and through the map simulator."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.identity.reserved import RESERVED, reserved_labels
from axoneme.labels.model import Label, LabelSet
from axoneme.policy import intervals as iv
from axoneme.policy.mapsim import longest_prefix, lookup
from axoneme.policy.repository import Repository
from axoneme.policy.resolve import resolve
from axoneme.policy.selector import SelectorCache
from axoneme.policy.types import (
    CIDRPeer,
    Direction,
    DirectionPolicy,
    EndpointPolicy,
    EndpointRef,
    EnforcementMode,
    L4Protocol,
    Peers,
    Policy,
    PolicyContext,
    PortProtocol,
    PortVerdicts,
    Requirement,
    Rule,
    Selector,
)


def labels(*texts: str) -> LabelSet:
    return frozenset(Label.parse(t) for t in texts)


def app(name: str) -> Selector:
    return Selector((Requirement("k8s:app", "In", frozenset({name})),))


def tcp(port: int, end: int = 0) -> PortProtocol:
    return PortProtocol(port, end, "TCP")


def rule(
    direction: Direction, action: str, peers: Peers, *ports: PortProtocol, index: int = 0
) -> Rule:
    assert action in ("allow", "deny")
    return Rule(direction, "allow" if action == "allow" else "deny", peers, ports, index=index)


def policy(name: str, *rules: Rule, subject: Selector | None = None, **flags: bool) -> Policy:
    directions = {r.direction for r in rules}
    return Policy(
        "CiliumNetworkPolicy",
        "demo",
        name,
        subject if subject is not None else app("web"),
        rules,
        flags.get("ingress", "ingress" in directions),
        flags.get("egress", "egress" in directions),
    )


CLIENT, WEB, OTHER = 300, 301, 302
C = 1 << 24
IDENTITIES: dict[int, LabelSet] = {
    **{n: reserved_labels(name) for name, n in RESERVED.items()},
    CLIENT: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=demo"),
    WEB: labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=demo"),
    OTHER: labels("k8s:app=other", "k8s:io.kubernetes.pod.namespace=demo"),
    C | 1: labels("cidr:10.0.0.0/8", "reserved:world"),
    C | 2: labels("cidr:10.1.0.0/16", "reserved:world"),
    C | 3: labels("cidr:8.8.8.8/32", "reserved:world"),
}
WEB_EP = EndpointRef(7, WEB, IDENTITIES[WEB], {"http": frozenset({("TCP", 8080)})})
FROM_CLIENT = Peers(selectors=(app("client"),))


def run(
    *policies: Policy,
    mode: EnforcementMode = "default",
    audit: bool = False,
    named: Mapping[int, Mapping[str, frozenset[tuple[str, int]]]] | None = None,
    endpoint: EndpointRef = WEB_EP,
) -> EndpointPolicy:
    ctx = PolicyContext(IDENTITIES, named or {}, mode, audit)
    return resolve(endpoint, policies, ctx, SelectorCache(IDENTITIES), revision=5)


def verdict(d: DirectionPolicy, identity: int, proto: str, port: int, ip: str = "10.9.9.9") -> str:
    return lookup(d, identity, ip, iv.protocol_number(proto), port).verdict


def test_l3_allow_plus_l4_deny_any_peer() -> None:
    """cilium-semantics §2.8: L3 allow from client + L4 deny 80/TCP ⇒ 80 denied, 81 and ping ok."""
    ep = run(
        policy(
            "p",
            rule("ingress", "allow", FROM_CLIENT),
            rule("ingress", "deny", Peers(any_peer=True), tcp(80)),
        )
    )
    tcp80 = iv.point("TCP", 80)
    assert ep.ingress.by_identity == {
        0: PortVerdicts(allow=(), deny=((tcp80, tcp80),)),
        CLIENT: PortVerdicts(allow=iv.FULL, deny=()),  # no cross-key subtraction
    }
    assert verdict(ep.ingress, CLIENT, "TCP", 80) == "DENIED"
    assert verdict(ep.ingress, CLIENT, "TCP", 81) == "ALLOWED"
    assert verdict(ep.ingress, CLIENT, "ICMP", 0) == "ALLOWED"
    assert verdict(ep.ingress, OTHER, "TCP", 81) == "DENIED"
    assert ep.ingress.enforced and not ep.egress.enforced
    assert ep.revision == 5 and ep.endpoint_id == 7
    assert ep.selected_by == ("CiliumNetworkPolicy/demo/p",)


def test_deny_on_same_key_is_subtracted_from_allow() -> None:
    ep = run(
        policy(
            "p",
            rule("ingress", "allow", FROM_CLIENT),
            rule("ingress", "deny", FROM_CLIENT, tcp(80)),
        )
    )
    v = ep.ingress.by_identity[CLIENT]
    assert v.deny == iv.port_range("TCP", 80, 80)
    assert v.allow == iv.subtract(iv.FULL, v.deny)
    assert iv.intersect(v.allow, v.deny) == ()


def test_l3_deny_denies_everything() -> None:
    ep = run(
        policy("allow", rule("ingress", "allow", Peers(any_peer=True))),
        policy("deny", rule("ingress", "deny", FROM_CLIENT)),
    )
    assert ep.ingress.by_identity[CLIENT] == PortVerdicts(allow=(), deny=iv.FULL)
    for proto, port in (("TCP", 80), ("UDP", 53), ("ICMP", 0), ("SCTP", 9)):
        assert verdict(ep.ingress, CLIENT, proto, port) == "DENIED"
    assert verdict(ep.ingress, OTHER, "TCP", 80) == "ALLOWED"
    assert ep.selected_by == ("CiliumNetworkPolicy/demo/allow", "CiliumNetworkPolicy/demo/deny")


def test_default_deny_is_per_direction() -> None:
    ep = run(policy("p", rule("egress", "allow", Peers(entities=("world",)), tcp(443))))
    assert ep.egress.enforced and not ep.ingress.enforced
    assert verdict(ep.egress, 2, "TCP", 443) == "ALLOWED"
    assert verdict(ep.egress, CLIENT, "TCP", 443) == "DENIED"
    assert verdict(ep.ingress, CLIENT, "TCP", 443) == "ALLOWED"
    # enableDefaultDeny: false → rules apply, nothing else is denied
    ep = run(policy("p", rule("egress", "deny", Peers(entities=("world",)), tcp(25)), egress=False))
    assert not ep.egress.enforced
    assert verdict(ep.egress, 2, "TCP", 25) == "DENIED"
    assert verdict(ep.egress, 2, "TCP", 26) == "ALLOWED"
    # a policy not selecting the endpoint changes nothing
    ep = run(policy("p", rule("ingress", "allow", FROM_CLIENT), subject=app("db")))
    assert not ep.ingress.enforced and ep.ingress.by_identity == {} and ep.selected_by == ()


def test_enforcement_modes_and_audit() -> None:
    ep = run(mode="always")
    assert ep.ingress.enforced and ep.egress.enforced and ep.ingress.by_identity == {}
    assert verdict(ep.ingress, CLIENT, "TCP", 80) == "DENIED"
    p = policy("p", rule("ingress", "deny", FROM_CLIENT), rule("ingress", "allow", FROM_CLIENT))
    ep = run(p, mode="never")
    assert not ep.ingress.enforced and ep.ingress.by_identity == {} and ep.ingress.by_prefix == {}
    assert verdict(ep.ingress, CLIENT, "TCP", 80) == "ALLOWED"
    ep = run(p, audit=True)
    assert ep.ingress.audit and ep.egress.audit
    assert verdict(ep.ingress, CLIENT, "TCP", 80) == "AUDIT"  # explicit deny, audited
    assert verdict(ep.ingress, OTHER, "TCP", 80) == "AUDIT"  # default deny, audited


def test_entities_and_all() -> None:
    ep = run(
        policy(
            "p",
            rule("ingress", "allow", Peers(entities=("host", "remote-node")), tcp(10250)),
            rule("ingress", "allow", Peers(entities=("world",)), tcp(443)),
            rule("egress", "allow", Peers(entities=("all",)), PortProtocol(53, protocol="UDP")),
            rule("egress", "allow", Peers(entities=("cluster",)), tcp(8080)),
        )
    )
    assert set(ep.ingress.by_identity) == {1, 6, 2, C | 1, C | 2, C | 3}
    assert ep.ingress.by_identity[C | 3].allow == iv.port_range("TCP", 443, 443)
    assert set(ep.egress.by_identity) == {0, 1, 3, 4, 5, 6, 7, 8, CLIENT, WEB, OTHER}
    assert ep.egress.by_identity[0].allow == iv.port_range("UDP", 53, 53)
    assert verdict(ep.egress, 99999, "UDP", 53) == "ALLOWED"  # `all` is identity 0
    assert verdict(ep.egress, C | 3, "TCP", 8080) == "DENIED"


def test_cnp_cidr_with_except_selects_cidr_identities() -> None:
    ep = run(
        policy(
            "p",
            rule("egress", "allow", Peers(cidrs=(CIDRPeer("10.0.0.0/8", ("10.1.0.0/16",)),))),
            rule("egress", "allow", Peers(cidrs=(CIDRPeer("0.0.0.0/0", ("10.0.0.0/8",)),)), tcp(1)),
        )
    )
    assert ep.egress.by_identity[C | 1].allow == iv.FULL
    assert C | 2 not in ep.egress.by_identity
    assert ep.egress.by_identity[C | 3].allow == iv.port_range("TCP", 1, 1)
    assert ep.egress.by_identity[2].allow == iv.port_range("TCP", 1, 1)  # /0 includes world
    assert CLIENT not in ep.egress.by_identity and ep.egress.by_prefix == {}


def test_ipblock_refinement_with_except_and_nested_rules() -> None:
    a = CIDRPeer("10.0.0.0/8", ("10.1.0.0/16", "10.2.0.0/16"), match_pods=True)
    b = CIDRPeer("10.1.0.0/16", match_pods=True)
    c = CIDRPeer("10.1.2.0/24", match_pods=True)
    ep = run(
        policy(
            "p",
            rule("ingress", "allow", Peers(cidrs=(a,)), tcp(80)),
            rule("ingress", "allow", Peers(cidrs=(b,)), PortProtocol(53, protocol="UDP")),
            rule("ingress", "deny", Peers(cidrs=(c,)), PortProtocol(53, protocol="UDP")),
        )
    )
    t80, u53 = iv.port_range("TCP", 80, 80), iv.port_range("UDP", 53, 53)
    assert ep.ingress.by_prefix == {
        "10.0.0.0/8": PortVerdicts(allow=t80),
        "10.1.0.0/16": PortVerdicts(allow=u53),  # in A's except, inside B: B's verdicts
        "10.1.2.0/24": PortVerdicts(deny=u53),
        "10.2.0.0/16": PortVerdicts(),  # carved out, nothing else covers it
    }
    assert ep.ingress.by_identity == {}
    cases = {
        ("10.9.0.1", "TCP", 80): "ALLOWED",
        ("10.1.0.1", "TCP", 80): "DENIED",
        ("10.1.0.1", "UDP", 53): "ALLOWED",
        ("10.1.2.3", "UDP", 53): "DENIED",
        ("10.2.0.1", "TCP", 80): "DENIED",
        ("11.0.0.1", "TCP", 80): "DENIED",
    }
    for (ip, proto, port), expected in cases.items():
        # identity does not matter for ipBlocks, pods included
        assert verdict(ep.ingress, CLIENT, proto, port, ip) == expected, (ip, proto, port)


def test_ipblock_refinement_drops_redundant_prefixes() -> None:
    outer = CIDRPeer("10.0.0.0/8", match_pods=True)
    inner = CIDRPeer("10.1.0.0/16", match_pods=True)
    ep = run(
        policy(
            "p",
            rule("egress", "allow", Peers(cidrs=(outer,)), tcp(80)),
            rule("egress", "allow", Peers(cidrs=(inner,)), tcp(80)),
        )
    )
    assert ep.egress.by_prefix == {"10.0.0.0/8": PortVerdicts(allow=iv.port_range("TCP", 80, 80))}


def test_named_ports_ingress_against_the_endpoint() -> None:
    ep = run(
        policy(
            "p",
            rule("ingress", "allow", FROM_CLIENT, PortProtocol(name="http")),
            rule("ingress", "allow", Peers(entities=("host",)), PortProtocol(name="nope")),
            rule(
                "ingress",
                "allow",
                Peers(entities=("health",)),
                PortProtocol(name="http", protocol="UDP"),
            ),
        )
    )
    assert ep.ingress.by_identity == {CLIENT: PortVerdicts(allow=iv.port_range("TCP", 8080, 8080))}


def test_named_ports_egress_per_peer_identity() -> None:
    named = {
        WEB: {"http": frozenset({("TCP", 80)})},
        OTHER: {"http": frozenset({("TCP", 8080)}), "dns": frozenset({("UDP", 53), ("TCP", 53)})},
    }
    ep = run(
        policy(
            "p",
            rule(
                "egress",
                "allow",
                Peers(selectors=(app("web"), app("other"))),
                PortProtocol(name="http"),
            ),
            rule("egress", "allow", Peers(any_peer=True), PortProtocol(name="dns", protocol="UDP")),
            rule("egress", "deny", Peers(any_peer=True), PortProtocol(name="http")),
            subject=app("client"),
        ),
        named=named,
        endpoint=EndpointRef(8, CLIENT, IDENTITIES[CLIENT]),
    )
    e = ep.egress.by_identity
    assert e[WEB] == PortVerdicts(allow=iv.port_range("TCP", 80, 80))
    assert e[OTHER] == PortVerdicts(allow=iv.port_range("TCP", 8080, 8080))
    assert e[0].allow == iv.port_range("UDP", 53, 53)
    # any_peer named port: the union over every identity's named ports
    assert e[0].deny == iv.union(iv.port_range("TCP", 80, 80), iv.port_range("TCP", 8080, 8080))
    assert verdict(ep.egress, WEB, "TCP", 80) == "DENIED"


def test_end_port_ranges_and_any_protocol() -> None:
    proto: L4Protocol = "ANY"
    ep = run(
        policy(
            "p",
            rule(
                "ingress", "allow", FROM_CLIENT, tcp(8000, 8080), PortProtocol(53, protocol=proto)
            ),
        )
    )
    allowed = ep.ingress.by_identity[CLIENT].allow
    assert allowed == iv.union(iv.port_range("TCP", 8000, 8080), iv.port_range("ANY", 53, 53))
    assert verdict(ep.ingress, CLIENT, "TCP", 8080) == "ALLOWED"
    assert verdict(ep.ingress, CLIENT, "TCP", 8081) == "DENIED"
    assert verdict(ep.ingress, CLIENT, "SCTP", 53) == "ALLOWED"
    assert verdict(ep.ingress, CLIENT, "ICMP", 0) == "DENIED"  # L4 rules do not admit ICMP


def test_multi_spec_policy_selected_once() -> None:
    p0 = policy("p", rule("ingress", "allow", FROM_CLIENT, tcp(1)))
    p1 = dataclasses.replace(
        p0, spec_index=1, rules=(rule("ingress", "allow", FROM_CLIENT, tcp(2)),)
    )
    ep = run(p0, p1)
    assert ep.selected_by == ("CiliumNetworkPolicy/demo/p",)
    assert ep.ingress.by_identity[CLIENT].allow == iv.port_range("TCP", 1, 2)


# ---- ipBlock refinement, exhaustively over a /24 ----------------------------------

BASE = ipaddress.IPv4Network("10.0.0.0/24")
SUBNETS = [str(n) for plen in (24, 25, 26, 28, 30, 32) for n in BASE.subnets(new_prefix=plen)]
SMALL_PORTS = [tcp(1), tcp(2), tcp(1, 3), PortProtocol(2, protocol="UDP")]


@st.composite
def ip_blocks(draw: st.DrawFn) -> tuple[str, CIDRPeer, tuple[PortProtocol, ...]]:
    cidr = draw(st.sampled_from(SUBNETS))
    outer = ipaddress.IPv4Network(cidr)
    inside = [p for p in SUBNETS if ipaddress.IPv4Network(p).subnet_of(outer) and p != cidr]
    excepts = draw(st.lists(st.sampled_from(inside), max_size=3, unique=True)) if inside else []
    ports = tuple(draw(st.lists(st.sampled_from(SMALL_PORTS), max_size=2)))
    return draw(st.sampled_from(["allow", "deny"])), CIDRPeer(cidr, tuple(excepts), True), ports


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.lists(ip_blocks(), min_size=1, max_size=5))
def test_prefix_refinement_longest_match_is_exact(
    blocks: list[tuple[str, CIDRPeer, tuple[PortProtocol, ...]]],
) -> None:
    rules = [rule("egress", a, Peers(cidrs=(c,)), *ports) for a, c, ports in blocks]
    by_prefix = run(policy("p", *rules)).egress.by_prefix
    for address in BASE:
        ip = str(address)
        covering = [
            (a, ports)
            for a, c, ports in blocks
            if address in ipaddress.ip_network(c.cidr)
            and not any(address in ipaddress.ip_network(e) for e in c.excepts)
        ]
        deny = iv.union(*(iv.from_ports(p) for a, p in covering if a == "deny"))
        allow = iv.subtract(
            iv.union(*(iv.from_ports(p) for a, p in covering if a == "allow")), deny
        )
        best = longest_prefix(by_prefix, ip)
        got = by_prefix[best] if best is not None else PortVerdicts()
        assert got == PortVerdicts(allow, deny), ip
    # no redundant entries: each differs from what its nearest kept ancestor gives
    for prefix, verdicts in by_prefix.items():
        net = ipaddress.IPv4Network(prefix)
        ancestors = [
            p for p in by_prefix if p != prefix and ipaddress.IPv4Network(p).supernet_of(net)
        ]
        parent = longest_prefix(ancestors, str(net.network_address))
        inherited = by_prefix[parent] if parent is not None else PortVerdicts()
        assert verdicts != inherited, prefix


# ---- the repository feeding the resolver -----------------------------------------


def test_repository_revisions_and_order() -> None:
    repo = Repository()
    assert repo.revision == 0 and repo.policies() == ()
    b = policy("b", rule("ingress", "allow", FROM_CLIENT, tcp(2)))
    a0 = policy("a", rule("ingress", "allow", FROM_CLIENT, tcp(1)))
    a1 = dataclasses.replace(
        a0, spec_index=1, rules=(rule("ingress", "deny", FROM_CLIENT, tcp(1)),)
    )
    assert repo.put([b]) == 1
    assert repo.put([a1, a0]) == 2
    assert repo.policies() == (a0, a1, b)
    assert repo.keys() == (
        ("CiliumNetworkPolicy", "demo", "a"),
        ("CiliumNetworkPolicy", "demo", "b"),
    )
    ep = run(*repo.policies())
    assert verdict(ep.ingress, CLIENT, "TCP", 1) == "DENIED"
    assert verdict(ep.ingress, CLIENT, "TCP", 2) == "ALLOWED"
    assert repo.put([a0]) == 3  # replace: the deny spec is gone
    assert repo.get(("CiliumNetworkPolicy", "demo", "a")) == (a0,)
    assert repo.delete(("CiliumNetworkPolicy", "demo", "b")) == 4
    assert repo.delete(("CiliumNetworkPolicy", "demo", "b")) is None
    assert repo.revision == 4 and len(repo) == 1
    assert ("CiliumNetworkPolicy", "demo", "a") in repo
    with pytest.raises(ValueError):
        repo.put([])
    with pytest.raises(ValueError):
        repo.put([a0, b])
