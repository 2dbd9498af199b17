"""The reference evaluator: the verdict for one flow, straight from the rules.

Written independently of ``resolve`` / ``intervals`` / the selector cache (no
interval arithmetic, no prefix refinement, no identity enumeration), so it can
serve as the oracle for the resolver and the datapath. It only reuses
``selector.matches`` (label-selector semantics, tested on its own).

A flow from ``src`` to ``dst`` (protocol name, destination port) is decided
by the egress side at ``src`` if ``src`` is a local endpoint AND the ingress
side at ``dst`` if ``dst`` is a local endpoint. One side, at endpoint E, in
direction d, with the other end of the flow as the peer P:

1. mode ``never`` → not enforced, nothing else is considered;
2. the policies selecting E are those whose subject matches E's labels;
   E is *enforced* in d when mode is ``always`` or one of them has
   ``default_deny`` in d;
3. a rule (direction d) of a selecting policy matches when one of its peer
   elements matches P and, under that element, one of its ports matches the
   packet (no ports = every protocol and port, ICMP included):
   - ``any_peer`` and the entity ``all``: every peer;
   - an entity: its identities / labels (selector.py's entity table);
   - a selector: ``matches(selector, P.labels)``;
   - a CNP CIDR peer: P's identity is a CIDR identity whose prefix is inside
     the cidr and not inside an except, or P is world (2) and the cidr a /0;
   - a NetworkPolicy ipBlock (``match_pods``): P's address is inside the
     cidr and not inside an except, whatever P's identity;
   (identity 0 is matched only by ``any_peer`` / ``all`` / ipBlocks)
   - port ``p`` (``end_port`` e: ``p..e``), 0 = every port; protocol ANY =
     TCP, UDP or SCTP; a named port matches the (protocol, port) pairs of its
     name: ingress → E's named ports; egress → the peer identity's
     (``ctx.named_ports``), or, for ``any_peer`` / ``all`` / ipBlocks, the
     union of every identity's; the rule's protocol narrows;
4. any matching deny rule → *denied* (by those rules); else any matching allow
   rule → *allowed*; else enforced → *default deny*; else *not enforced*.
   A drop in a side with audit (``ctx.audit``) becomes AUDIT: forwarded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from axoneme.labels.model import NAMESPACE_KEY, Label, LabelSet
from axoneme.policy.selector import matches
from axoneme.policy.types import (
    Action,
    CIDRPeer,
    Direction,
    EndpointRef,
    EnforcementMode,
    Peers,
    Policy,
    PolicyContext,
    PortProtocol,
    Rule,
)

NamedPorts = Mapping[str, frozenset[tuple[str, int]]]
Outcome = Literal["allowed", "denied", "default-deny", "not-enforced"]
Verdict = Literal["ALLOWED", "DENIED", "AUDIT"]


@dataclass(frozen=True)
class LocalEndpoint:
    """An endpoint on this node: policy applies at it."""

    id: int
    identity: int
    labels: LabelSet
    ip: str
    named_ports: NamedPorts = field(default_factory=dict)

    def ref(self) -> EndpointRef:
        return EndpointRef(self.id, self.identity, self.labels, self.named_ports)


@dataclass(frozen=True)
class RemotePeer:
    """Anything else: a pod elsewhere, a node, the world."""

    identity: int
    labels: LabelSet
    ip: str


Peer = LocalEndpoint | RemotePeer


@dataclass(frozen=True)
class RuleRef:
    """``CiliumNetworkPolicy/demo/allow-web ingress[0]``; a later spec of a
    multi-spec CNP reads ``... specs[1].ingress[0]``."""

    policy: str
    direction: Direction
    action: Action
    index: int
    spec_index: int = 0
    not_enforced: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return self.direction + ("Deny" if self.action == "deny" else "")

    def __str__(self) -> str:
        spec = f"specs[{self.spec_index}]." if self.spec_index else ""
        return f"{self.policy} {spec}{self.section}[{self.index}]"


@dataclass(frozen=True)
class SideDecision:
    direction: Direction
    endpoint_id: int
    outcome: Outcome
    enforced: bool
    audit: bool
    mode: EnforcementMode
    selected_by: tuple[str, ...] = ()
    default_deny_by: tuple[str, ...] = ()  # selecting policies with default deny here
    allowed_by: tuple[RuleRef, ...] = ()
    denied_by: tuple[RuleRef, ...] = ()

    @property
    def dropped(self) -> bool:
        """The policy would drop it (before audit mode lets it through)."""
        return self.outcome in ("denied", "default-deny")

    @property
    def verdict(self) -> Verdict:
        if not self.dropped:
            return "ALLOWED"
        return "AUDIT" if self.audit else "DENIED"


@dataclass(frozen=True)
class Decision:
    egress: SideDecision | None  # at the source, when it is a local endpoint
    ingress: SideDecision | None  # at the destination, when it is a local endpoint

    @property
    def verdict(self) -> Verdict:
        sides = [s.verdict for s in (self.egress, self.ingress) if s is not None]
        if "DENIED" in sides:
            return "DENIED"
        return "AUDIT" if "AUDIT" in sides else "ALLOWED"

    @property
    def forwarded(self) -> bool:
        return self.verdict != "DENIED"


# ---- peer elements ------------------------------------------------------------

_WORLD = Label("reserved", "world")


def _is_world(identity: int, labels: LabelSet) -> bool:
    return identity == 2 or _WORLD in labels


def entity_matches(entity: str, identity: int, labels: LabelSet) -> bool:
    if entity == "all":
        return True
    if identity == 0:
        return False
    if entity in ("world", "world-ipv4", "world-ipv6"):
        return _is_world(identity, labels)
    if entity == "cluster":
        in_a_namespace = any(lb.source == "k8s" and lb.key == NAMESPACE_KEY for lb in labels)
        return in_a_namespace or identity in (1, 3, 4, 5, 6, 7, 8)
    fixed = {
        "host": 1,
        "unmanaged": 3,
        "health": 4,
        "init": 5,
        "remote-node": 6,
        "kube-apiserver": 7,
        "ingress": 8,
    }
    return entity in fixed and identity == fixed[entity]


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def _inside(inner: str, outer: str) -> bool:
    a, b = _net(inner), _net(outer)
    return (
        a.version == b.version and a.prefixlen >= b.prefixlen and b.supernet_of(a)  # type: ignore[arg-type]
    )


def _cidr_identity_prefix(labels: LabelSet) -> str | None:
    prefixes: list[tuple[int, str]] = []
    for label in labels:
        if label.source == "cidr":
            text = label.key
            if ":" not in text and "-" in text:
                text = text.replace("-", ":")
            try:
                prefixes.append((_net(text).prefixlen, text))
            except ValueError:
                continue
    return max(prefixes)[1] if prefixes else None


def cidr_identity_matches(peer: CIDRPeer, identity: int, labels: LabelSet) -> bool:
    """A CNP toCIDR/toCIDRSet entry against a peer identity."""
    if identity == 0:
        return False
    if identity == 2 and _net(peer.cidr).prefixlen == 0:
        return True
    prefix = _cidr_identity_prefix(labels)
    if prefix is None or not _inside(prefix, peer.cidr):
        return False
    return not any(_inside(prefix, e) for e in peer.excepts)


def ip_block_matches(peer: CIDRPeer, ip: str) -> bool:
    """A NetworkPolicy ipBlock against a peer address."""
    host = "/128" if ":" in ip else "/32"
    if not _inside(ip + host, peer.cidr):
        return False
    return not any(_inside(ip + host, e) for e in peer.excepts)


def _peer_contexts(
    peers: Peers,
    peer: Peer,
    own_named: NamedPorts,
    direction: Direction,
    ctx: PolicyContext,
) -> list[NamedPorts]:
    """The named-port tables under which each matching peer element checks ports."""
    wide: NamedPorts
    narrow: NamedPorts
    if direction == "ingress":
        wide = narrow = own_named
    else:
        wide = _union_named(ctx.named_ports)
        narrow = ctx.named_ports.get(peer.identity, {})
    out: list[NamedPorts] = []
    if peers.any_peer:
        out.append(wide)
    for entity in peers.entities:
        if entity_matches(entity, peer.identity, peer.labels):
            out.append(wide if entity == "all" else narrow)
    for selector in peers.selectors:
        if peer.identity != 0 and matches(selector, peer.labels):
            out.append(narrow)
    for cidr in peers.cidrs:
        if cidr.match_pods:
            if ip_block_matches(cidr, peer.ip):
                out.append(wide)
        elif cidr_identity_matches(cidr, peer.identity, peer.labels):
            out.append(narrow)
    return out


def _union_named(tables: Mapping[int, NamedPorts]) -> NamedPorts:
    out: dict[str, frozenset[tuple[str, int]]] = {}
    for table in tables.values():
        for name, entries in table.items():
            out[name] = out.get(name, frozenset()) | entries
    return out


def port_matches(pp: PortProtocol, proto: str, port: int, named: NamedPorts) -> bool:
    protocols = ("TCP", "UDP", "SCTP") if pp.protocol == "ANY" else (pp.protocol,)
    if proto not in protocols:
        return False
    if pp.name:
        return any(p.upper() == proto and n == port for p, n in named.get(pp.name, frozenset()))
    if pp.port == 0:
        return True
    return pp.port <= port <= max(pp.port, pp.end_port)


def rule_matches(
    rule: Rule,
    endpoint: LocalEndpoint,
    peer: Peer,
    proto: str,
    port: int,
    ctx: PolicyContext,
) -> bool:
    for named in _peer_contexts(rule.peers, peer, endpoint.named_ports, rule.direction, ctx):
        if not rule.ports or any(port_matches(pp, proto, port, named) for pp in rule.ports):
            return True
    return False


def _dedupe(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def evaluate_side(
    endpoint: LocalEndpoint,
    direction: Direction,
    peer: Peer,
    proto: str,
    port: int,
    policies: Sequence[Policy],
    ctx: PolicyContext,
) -> SideDecision:
    proto = proto.upper()
    selecting = [p for p in policies if matches(p.subject, endpoint.labels)]
    selected_by = _dedupe([p.ref for p in selecting])
    if ctx.mode == "never":
        return SideDecision(
            direction, endpoint.id, "not-enforced", False, ctx.audit, ctx.mode, selected_by
        )
    default_deny_by = _dedupe(
        [
            p.ref
            for p in selecting
            if (p.default_deny_ingress if direction == "ingress" else p.default_deny_egress)
        ]
    )
    enforced = ctx.mode == "always" or bool(default_deny_by)
    allowed: list[RuleRef] = []
    denied: list[RuleRef] = []
    for policy in selecting:
        for rule in policy.rules:
            if rule.direction == direction and rule_matches(rule, endpoint, peer, proto, port, ctx):
                ref = RuleRef(
                    policy.ref,
                    rule.direction,
                    rule.action,
                    rule.index,
                    policy.spec_index,
                    rule.not_enforced,
                )
                (allowed if rule.action == "allow" else denied).append(ref)
    outcome: Outcome
    if denied:
        outcome = "denied"
    elif allowed:
        outcome = "allowed"
    elif enforced:
        outcome = "default-deny"
    else:
        outcome = "not-enforced"
    return SideDecision(
        direction,
        endpoint.id,
        outcome,
        enforced,
        ctx.audit,
        ctx.mode,
        selected_by,
        default_deny_by,
        tuple(allowed),
        tuple(denied),
    )


def evaluate(
    src: Peer,
    dst: Peer,
    proto: str,
    port: int,
    policies: Sequence[Policy],
    ctx: PolicyContext,
) -> Decision:
    """The verdict for a new connection src → dst (module docstring)."""
    egress = (
        evaluate_side(src, "egress", dst, proto, port, policies, ctx)
        if isinstance(src, LocalEndpoint)
        else None
    )
    ingress = (
        evaluate_side(dst, "ingress", src, proto, port, policies, ctx)
        if isinstance(dst, LocalEndpoint)
        else None
    )
    return Decision(egress, ingress)
