"""Policies → the desired datapath state of one endpoint (``EndpointPolicy``).

Per direction of the endpoint:

- ``enforced``: ``mode == "always"``, or ``mode == "default"`` and some
  policy selecting the endpoint has ``default_deny`` in that direction.
  ``mode == "never"``: not enforced and no entries at all.
- ``audit``: ``ctx.audit``.
- ``by_identity``: peer identity → ``PortVerdicts``. Each rule's peers become
  keys: ``any_peer`` and the entity ``all`` → key 0 (any identity *and* any
  address, even one whose identity appears later); selectors, other entities
  and CNP CIDR peers → the identities the ``SelectorCache`` gives. The rule's
  ports (intervals) are added to the allow or deny union of each key; then
  per key ``allow -= deny``.
- ``by_prefix``: NetworkPolicy ipBlocks (``CIDRPeer.match_pods``), refined so
  that the longest matching prefix of every address carries the combined
  verdicts of all ipBlock rules whose ``cidr - excepts`` contains it.

No cross-key subtraction: a deny on key 0 (or on a prefix) is *not*
subtracted from the allow of a specific identity. The datapath looks up the
peer's identity, key 0 and the longest prefix, and a deny in any of them wins
(docs/datapath.md), so the combined verdict is already deny-over-allow;
``PortVerdicts.allow ∩ deny = ∅`` holds within each key only.

Named ports: an ingress rule resolves names against ``endpoint.named_ports``;
an egress rule resolves them per peer identity against
``ctx.named_ports[identity]``, and for key 0 and for ipBlock prefixes (no
single identity) against the union of every identity's named ports. The
rule's protocol narrows (``ANY`` keeps the named port's own protocol); a name
that resolves to nothing allows (or denies) nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from axoneme.policy import intervals as iv
from axoneme.policy.selector import Network, SelectorCache, matches, parse_network, subnet_of
from axoneme.policy.types import (
    ANY_IDENTITY,
    PROTO_NUMBERS,
    Direction,
    DirectionPolicy,
    EndpointPolicy,
    EndpointRef,
    Interval,
    Policy,
    PolicyContext,
    PortProtocol,
    PortVerdicts,
    Rule,
)

NamedPorts = Mapping[str, frozenset[tuple[str, int]]]
Intervals = tuple[Interval, ...]


def policies_selecting(endpoint: EndpointRef, policies: Sequence[Policy]) -> tuple[Policy, ...]:
    return tuple(p for p in policies if matches(p.subject, endpoint.labels))


def union_named_ports(
    by_identity: Mapping[int, NamedPorts],
) -> dict[str, frozenset[tuple[str, int]]]:
    merged: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for ports in by_identity.values():
        for name, entries in ports.items():
            merged[name].update(entries)
    return {name: frozenset(entries) for name, entries in merged.items()}


def named_port_intervals(pp: PortProtocol, named: NamedPorts) -> Intervals:
    points: list[Interval] = []
    for proto, port in named.get(pp.name, frozenset()):
        proto = proto.upper()
        if proto not in PROTO_NUMBERS or (pp.protocol != "ANY" and proto != pp.protocol):
            continue
        if 0 <= port <= iv.PORT_MAX:
            value = (PROTO_NUMBERS[proto] << 16) | port
            points.append((value, value))
    return iv.normalize(points)


@dataclass(frozen=True)
class _RulePorts:
    """A rule's ports: the numeric part, plus the named ports still to resolve."""

    numeric: Intervals
    names: tuple[PortProtocol, ...]

    @classmethod
    def of(cls, rule: Rule) -> _RulePorts:
        if not rule.ports:
            return cls(iv.FULL, ())
        numeric = iv.union(*(iv.from_port_protocol(pp) for pp in rule.ports if not pp.name))
        return cls(numeric, tuple(pp for pp in rule.ports if pp.name))

    def resolve(self, named: NamedPorts) -> Intervals:
        if not self.names:
            return self.numeric
        return iv.union(self.numeric, *(named_port_intervals(pp, named) for pp in self.names))


@dataclass(frozen=True)
class _Block:
    action: str
    cidr: Network
    excepts: tuple[Network, ...]
    ports: Intervals

    def covers(self, prefix: Network) -> bool:
        return subnet_of(prefix, self.cidr) and not any(subnet_of(prefix, e) for e in self.excepts)


def _verdicts(allow: Sequence[Intervals], deny: Sequence[Intervals]) -> PortVerdicts:
    denied = iv.union(*deny)
    return PortVerdicts(allow=iv.subtract(iv.union(*allow), denied), deny=denied)


def refine_prefixes(blocks: Sequence[_Block]) -> dict[str, PortVerdicts]:
    """ipBlocks → prefix table with the longest-match property (module docstring).

    Candidate prefixes are every cidr and except. For an address whose longest
    candidate is ``p``, the candidates containing it are exactly those
    containing ``p``, so the rules covering it are those whose cidr contains
    ``p`` and none of whose excepts does: ``verdict(p)`` is exact. A
    candidate whose verdict equals the one its nearest kept ancestor gives is
    dropped; an except left with no verdict is kept as an empty entry so the
    lookup stops there instead of falling back to the enclosing cidr.
    """
    candidates: set[Network] = set()
    for block in blocks:
        candidates.add(block.cidr)
        candidates.update(block.excepts)
    kept: dict[Network, PortVerdicts] = {}
    for prefix in sorted(candidates, key=lambda n: (n.version, n.prefixlen, n.network_address)):
        covering = [b for b in blocks if b.covers(prefix)]
        verdict = _verdicts(
            [b.ports for b in covering if b.action == "allow"],
            [b.ports for b in covering if b.action == "deny"],
        )
        inherited = PortVerdicts()
        for plen in range(prefix.prefixlen - 1, -1, -1):
            parent = prefix.supernet(new_prefix=plen)
            if parent in kept:
                inherited = kept[parent]
                break
        if verdict != inherited:
            kept[prefix] = verdict
    return {str(prefix): verdict for prefix, verdict in kept.items()}


def _direction(
    direction: Direction,
    endpoint: EndpointRef,
    selecting: Sequence[Policy],
    ctx: PolicyContext,
    cache: SelectorCache,
) -> DirectionPolicy:
    enforced = ctx.mode == "always" or any(
        p.default_deny_ingress if direction == "ingress" else p.default_deny_egress
        for p in selecting
    )
    allow: dict[int, list[Intervals]] = defaultdict(list)
    deny: dict[int, list[Intervals]] = defaultdict(list)
    blocks: list[_Block] = []
    uses_names = any(
        pp.name for p in selecting for r in p.rules if r.direction == direction for pp in r.ports
    )
    all_named = union_named_ports(ctx.named_ports) if direction == "egress" and uses_names else {}
    for policy in selecting:
        for rule in policy.rules:
            if rule.direction != direction:
                continue
            target = allow if rule.action == "allow" else deny
            ports = _RulePorts.of(rule)
            peers = rule.peers
            wide: NamedPorts = endpoint.named_ports if direction == "ingress" else all_named
            if peers.any_peer or "all" in peers.entities:
                target[ANY_IDENTITY].append(ports.resolve(wide))
            selected: set[int] = set()
            for selector in peers.selectors:
                selected |= cache.select(selector)
            for entity in peers.entities:
                if entity != "all":
                    selected |= cache.select(entity)
            for cidr in peers.cidrs:
                if cidr.match_pods:
                    blocks.append(
                        _Block(
                            rule.action,
                            parse_network(cidr.cidr),
                            tuple(parse_network(e) for e in cidr.excepts),
                            ports.resolve(wide),
                        )
                    )
                else:
                    selected |= cache.select(cidr)
            selected.discard(ANY_IDENTITY)
            for identity in selected:
                if direction == "ingress":
                    target[identity].append(ports.resolve(endpoint.named_ports))
                else:
                    target[identity].append(ports.resolve(ctx.named_ports.get(identity, {})))
    by_identity: dict[int, PortVerdicts] = {}
    for key in sorted(set(allow) | set(deny)):
        verdict = _verdicts(allow.get(key, []), deny.get(key, []))
        if verdict.allow or verdict.deny:
            by_identity[key] = verdict
    return DirectionPolicy(
        enforced=enforced,
        audit=ctx.audit,
        by_identity=by_identity,
        by_prefix=refine_prefixes(blocks),
    )


def resolve(
    endpoint: EndpointRef,
    policies: Sequence[Policy],
    ctx: PolicyContext,
    cache: SelectorCache,
    *,
    revision: int = 0,
) -> EndpointPolicy:
    """The desired datapath state of ``endpoint`` under ``policies`` (module docstring)."""
    selecting = policies_selecting(endpoint, policies)
    refs = tuple(dict.fromkeys(p.ref for p in selecting))
    if ctx.mode == "never":
        off = DirectionPolicy(enforced=False, audit=ctx.audit)
        return EndpointPolicy(endpoint.id, off, off, revision, refs)
    return EndpointPolicy(
        endpoint_id=endpoint.id,
        ingress=_direction("ingress", endpoint, selecting, ctx, cache),
        egress=_direction("egress", endpoint, selecting, ctx, cache),
        revision=revision,
        selected_by=refs,
    )
