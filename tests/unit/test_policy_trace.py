"""policy trace: human lines for one flow, built on the reference evaluator."""

from __future__ import annotations

import dataclasses

from axoneme.identity.reserved import RESERVED, reserved_labels
from axoneme.labels.model import Label, LabelSet
from axoneme.policy.reference import LocalEndpoint, RemotePeer
from axoneme.policy.trace import trace
from axoneme.policy.types import (
    Peers,
    Policy,
    PolicyContext,
    PortProtocol,
    Requirement,
    Rule,
    Selector,
)


def labels(*texts: str) -> LabelSet:
    return frozenset(Label.parse(t) for t in texts)


def app(name: str) -> Selector:
    return Selector((Requirement("k8s:app", "In", frozenset({name})),))


def cnp(name: str, *rules: Rule, subject: Selector | None = None, spec_index: int = 0) -> Policy:
    directions = {r.direction for r in rules}
    return Policy(
        "CiliumNetworkPolicy",
        "demo",
        name,
        subject if subject is not None else app("web"),
        rules,
        "ingress" in directions,
        "egress" in directions,
        spec_index=spec_index,
    )


IDS: dict[int, LabelSet] = {
    **{n: reserved_labels(name) for name, n in RESERVED.items()},
    300: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=demo"),
    301: labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=demo"),
}
CLIENT = LocalEndpoint(11, 300, IDS[300], "10.0.1.5")
WEB = LocalEndpoint(12, 301, IDS[301], "10.0.1.6")
WORLD = RemotePeer(2, IDS[2], "1.1.1.1")
CTX = PolicyContext(IDS, {})
TCP80 = (PortProtocol(80, protocol="TCP"),)
POLICIES = [
    cnp(
        "allow-web",
        Rule("ingress", "allow", Peers(selectors=(app("client"),)), TCP80),
        Rule("ingress", "deny", Peers(entities=("world",)), index=0),
        Rule("ingress", "deny", Peers(any_peer=True), (PortProtocol(81, protocol="TCP"),), index=1),
    ),
    cnp(
        "client-out",
        Rule("egress", "allow", Peers(selectors=(app("web"),)), TCP80, ("toPorts[0].rules.http",)),
        subject=app("client"),
    ),
]


def test_allowed_both_ways() -> None:
    result = trace(CLIENT, WEB, "TCP", 80, POLICIES, CTX)
    assert result.verdict == "ALLOWED"
    assert result.lines[0] == (
        "Tracing From: [k8s:app=client, k8s:io.kubernetes.pod.namespace=demo] => "
        "To: [k8s:app=web, k8s:io.kubernetes.pod.namespace=demo] Ports: [80/TCP]"
    )
    text = result.text
    assert "Source: endpoint 11 (identity 300, 10.0.1.5)\n" in text
    assert "  selected by CiliumNetworkPolicy/demo/client-out\n" in text
    assert "  selected by CiliumNetworkPolicy/demo/allow-web\n" in text
    assert (
        "  allowed by CiliumNetworkPolicy/demo/client-out egress[0]"
        " (not enforced: toPorts[0].rules.http)\n" in text
    )
    assert "  allowed by CiliumNetworkPolicy/demo/allow-web ingress[0]\n" in text
    assert result.lines[-1] == "Final verdict: ALLOWED"


def test_denied_by_deny_rule_and_default_deny() -> None:
    result = trace(CLIENT, WEB, "TCP", 81, POLICIES, CTX)
    assert result.verdict == "DENIED"
    assert "  denied by CiliumNetworkPolicy/demo/allow-web ingressDeny[1]" in result.lines
    assert (
        "  default deny: selected by CiliumNetworkPolicy/demo/client-out with no matching allow"
        in result.lines
    )
    assert "  egress verdict: DENIED" in result.lines
    assert "  ingress verdict: DENIED" in result.lines
    assert result.decision.ingress is not None and result.decision.ingress.outcome == "denied"


def test_deny_overrides_allow_is_shown() -> None:
    policies = [
        *POLICIES,
        cnp("world-web", Rule("ingress", "allow", Peers(entities=("world",)), TCP80)),
    ]
    result = trace(WORLD, WEB, "TCP", 80, policies, CTX)
    assert result.verdict == "DENIED"
    assert "  denied by CiliumNetworkPolicy/demo/allow-web ingressDeny[0]" in result.lines
    assert (
        "  allowed by CiliumNetworkPolicy/demo/world-web ingress[0] (overridden by deny)"
        in result.lines
    )
    assert "Source: remote peer (identity 2, 1.1.1.1)" in result.lines
    assert "  not a local endpoint: no policy is enforced on its side" in result.lines
    assert not any(line.startswith("Egress") for line in result.lines)


def test_audit_mode() -> None:
    result = trace(WORLD, WEB, "TCP", 80, POLICIES, dataclasses.replace(CTX, audit=True))
    assert result.verdict == "AUDIT"
    assert "  audit mode: the drop is reported, the packet is let through" in result.lines
    assert result.lines[-1] == "Final verdict: AUDIT"


def test_not_enforced_and_modes() -> None:
    result = trace(WEB, WORLD, "ICMP", 0, POLICIES, CTX)
    assert result.verdict == "ALLOWED"
    assert "Ports: [ICMP]" in result.lines[0]
    assert (
        "  not enforced: no policy selecting the endpoint has default deny for egress"
        in result.lines
    )
    never = trace(CLIENT, WEB, "TCP", 81, POLICIES, dataclasses.replace(CTX, mode="never"))
    assert never.verdict == "ALLOWED"
    assert "  policy enforcement is disabled (mode never)" in never.lines
    always = trace(WEB, WORLD, "UDP", 53, [], dataclasses.replace(CTX, mode="always"))
    assert always.verdict == "DENIED"
    assert "  selected by no policy" in always.lines
    assert "  default deny: policy enforcement mode always, no matching allow" in always.lines


def test_rule_refs_name_later_specs() -> None:
    spec1 = cnp("multi", Rule("ingress", "allow", Peers(any_peer=True), TCP80), spec_index=1)
    result = trace(WORLD, WEB, "TCP", 80, [spec1], CTX)
    assert "  allowed by CiliumNetworkPolicy/demo/multi specs[1].ingress[0]" in result.lines
