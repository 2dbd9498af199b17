"""``cilium.io/v2`` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy → ``Policy`` values.

One ``Policy`` per rule: ``spec`` gives one, ``specs`` one per item
(``spec_index``). What Cilium checks when it imports a rule is checked here
too (``pkg/policy/api/rule_validation.go``), with the field path:

- one L3 kind per entry: ``fromEndpoints``, ``fromCIDR``, ``fromCIDRSet``,
  ``fromEntities`` (egress also ``toServices``, ``toFQDNs``) cannot be mixed in
  one entry ("combining … is not supported yet", cilium-semantics.md §2.2), so
  an entry's ``Peers`` has one kind; separate entries are ORed;
- ``icmps`` not with ``toPorts``; L7 rules only on TCP ports other than 0
  (DNS also UDP/ANY, egress only, no ranges), one L7 kind per port rule;
- ``fromRequires``/``toRequires`` are rejected (removed in Cilium 1.19, MaxItems=0).

Entry semantics: peers AND ports. No L3 field but ``toPorts`` → any peer; an
entry with neither (``{}``) allows (or denies) nothing yet still counts for
default deny. Empty lists count as absent (Cilium tests ``len``).

Accepted but not enforced yet (named in ``Rule.not_enforced`` and in a
``Policy.warnings`` line with the full path), never enforced more loosely
than their L3/L4 part, except L7 which the brief asks to keep at L4:

- ``toPorts[].rules`` (http, dns, kafka, l7) and ``serverNames``: the L3/L4
  part of the rule is enforced, so every request on those ports passes;
- ``toFQDNs``, ``icmps``: the entry matches nothing (an allow allows nothing,
  a deny denies nothing) until DNS and ICMP policy exist;
- ``toServices`` (k8sService, k8sServiceSelector) parses to ServicePeers, which
  the agent expands to the services' backends (``policy/services.py``);
- ``nodeSelector`` (host policies, CCNP only): the rules are parsed and
  checked, but the subject is a selector no endpoint satisfies
  (``reserved:host In {}``), so the policy selects nothing.

Namespace defaulting (§2.3): a CNP's endpointSelector always gets
``k8s:io.kubernetes.pod.namespace=<ns>`` (a user requirement on that key is
dropped, with a warning when it said something else); its peer selectors get
it unless they name the namespace key (any source), a
``io.cilium.k8s.namespace.labels.*`` key or a ``reserved:`` key. A CCNP's
peer selectors without a namespace or ``reserved:`` key get
``k8s:io.kubernetes.pod.namespace Exists``; its endpointSelector is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.names import dns_label
from axoneme.policy.parse_common import (
    NAMESPACE_EXISTS,
    Raw,
    at,
    boolean,
    canonical,
    cidr_peer,
    expect_kind,
    is_namespace_key,
    is_namespace_labels_key,
    is_reserved_key,
    lst,
    meta,
    named_port,
    namespace_is,
    network,
    obj,
    selector,
    strict,
    string,
)
from axoneme.policy.types import (
    ENTITIES,
    Action,
    CIDRPeer,
    Direction,
    L4Protocol,
    Peers,
    Policy,
    PolicyKind,
    PortProtocol,
    Requirement,
    Rule,
    Selector,
    ServicePeer,
)

API_VERSION = "cilium.io/v2"
CNP: PolicyKind = "CiliumNetworkPolicy"
CCNP: PolicyKind = "CiliumClusterwideNetworkPolicy"
PROTOCOLS: tuple[L4Protocol, ...] = ("TCP", "UDP", "SCTP", "ANY")
MAX_PORTS = 40
MAX_ICMP_FIELDS = 40
L7Kind = Literal["http", "dns", "kafka", "l7"]

# A host policy (nodeSelector) is not enforced: its subject selects no endpoint.
SELECTS_NOTHING = Selector((Requirement("reserved:host", "In", frozenset()),))

# ---- the raw schema (for the reader, and the source of the strict field sets) ----


class LabelSelectorRaw(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[dict[str, Any]]


class PortProtocolRaw(TypedDict, total=False):
    port: str | int  # number, IANA name, "0" or "" (every port)
    endPort: int
    protocol: str  # TCP, UDP, SCTP, ANY; empty = ANY


class L7RulesRaw(TypedDict, total=False):
    http: list[dict[str, Any]]
    dns: list[dict[str, Any]]
    kafka: list[dict[str, Any]]
    l7proto: str
    l7: list[dict[str, str]]


class PortRuleRaw(TypedDict, total=False):
    ports: list[PortProtocolRaw]
    rules: L7RulesRaw
    serverNames: list[str]


class PortDenyRuleRaw(TypedDict, total=False):
    ports: list[PortProtocolRaw]


CIDRRuleRaw = TypedDict("CIDRRuleRaw", {"cidr": str, "except": list[str]}, total=False)


class FQDNSelectorRaw(TypedDict, total=False):
    matchName: str
    matchPattern: str


class K8sServiceRaw(TypedDict, total=False):
    serviceName: str
    namespace: str


class K8sServiceSelectorRaw(TypedDict, total=False):
    selector: LabelSelectorRaw
    namespace: str


class ServiceRaw(TypedDict, total=False):
    k8sService: K8sServiceRaw
    k8sServiceSelector: K8sServiceSelectorRaw


class ICMPFieldRaw(TypedDict, total=False):
    family: str
    type: int | str


class ICMPRuleRaw(TypedDict, total=False):
    fields: list[ICMPFieldRaw]


class _IngressCommonRaw(TypedDict, total=False):
    fromEndpoints: list[LabelSelectorRaw]
    fromRequires: list[LabelSelectorRaw]
    fromCIDR: list[str]
    fromCIDRSet: list[CIDRRuleRaw]
    fromEntities: list[str]
    icmps: list[ICMPRuleRaw]


class IngressRuleRaw(_IngressCommonRaw, total=False):
    toPorts: list[PortRuleRaw]


class IngressDenyRuleRaw(_IngressCommonRaw, total=False):
    toPorts: list[PortDenyRuleRaw]


class _EgressCommonRaw(TypedDict, total=False):
    toEndpoints: list[LabelSelectorRaw]
    toRequires: list[LabelSelectorRaw]
    toCIDR: list[str]
    toCIDRSet: list[CIDRRuleRaw]
    toEntities: list[str]
    toServices: list[ServiceRaw]
    icmps: list[ICMPRuleRaw]


class EgressRuleRaw(_EgressCommonRaw, total=False):
    toFQDNs: list[FQDNSelectorRaw]
    toPorts: list[PortRuleRaw]


class EgressDenyRuleRaw(_EgressCommonRaw, total=False):
    toPorts: list[PortDenyRuleRaw]


class DefaultDenyRaw(TypedDict, total=False):
    ingress: bool
    egress: bool


class PolicyLabelRaw(TypedDict, total=False):
    key: str
    value: str
    source: str


class LogRaw(TypedDict, total=False):
    value: str


class RuleRaw(TypedDict, total=False):
    endpointSelector: LabelSelectorRaw
    nodeSelector: LabelSelectorRaw  # CCNP only
    ingress: list[IngressRuleRaw]
    ingressDeny: list[IngressDenyRuleRaw]
    egress: list[EgressRuleRaw]
    egressDeny: list[EgressDenyRuleRaw]
    enableDefaultDeny: DefaultDenyRaw
    labels: list[PolicyLabelRaw]
    description: str
    log: LogRaw


_TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "specs", "status")
_ENTRY_FIELDS: dict[tuple[Direction, Action], frozenset[str]] = {
    ("ingress", "allow"): IngressRuleRaw.__optional_keys__,
    ("ingress", "deny"): IngressDenyRuleRaw.__optional_keys__,
    ("egress", "allow"): EgressRuleRaw.__optional_keys__,
    ("egress", "deny"): EgressDenyRuleRaw.__optional_keys__,
}
# Real schema fields Axoneme does not implement: rejected, with the reason.
_UNSUPPORTED = {
    "fromNodes": "node selectors need per-node identities; use fromEntities remote-node/host",
    "toNodes": "node selectors need per-node identities; use toEntities remote-node/host",
    "fromGroups": "cloud provider groups are not supported; list the CIDRs",
    "toGroups": "cloud provider groups are not supported; list the CIDRs",
    "authentication": "mutual authentication is not supported",
    "terminatingTLS": "TLS interception needs the L7 proxy",
    "originatingTLS": "TLS interception needs the L7 proxy",
    "listener": "Envoy listeners are not supported",
    "cidrGroupRef": "CiliumCIDRGroup references are not supported; list the CIDRs in cidr/except",
    "cidrGroupSelector": "CiliumCIDRGroup selectors are not supported; list the CIDRs",
}
_DENY_FORBIDDEN = {
    "rules": "deny rules are L3/L4 only (no L7 rules)",
    "serverNames": "deny rules are L3/L4 only (no serverNames)",
    "toFQDNs": "toFQDNs is not allowed in deny rules",
    "authentication": "authentication is not allowed in deny rules",
}
# The L3 kinds of an entry, in the order the error message names them.
_L3 = {
    "ingress": ("fromEndpoints", "fromCIDR", "fromCIDRSet", "fromEntities"),
    "egress": ("toEndpoints", "toCIDR", "toCIDRSet", "toEntities", "toServices", "toFQDNs"),
}
_LISTS: tuple[tuple[str, Direction, Action], ...] = (
    ("ingress", "ingress", "allow"),
    ("ingressDeny", "ingress", "deny"),
    ("egress", "egress", "allow"),
    ("egressDeny", "egress", "deny"),
)
# Cilium's FQDN patterns, written without nested quantifiers (no backtracking blow-up).
_MATCH_NAME = re.compile(r"^[-a-zA-Z0-9_]+(\.[-a-zA-Z0-9_]+)*\.?$")
_MATCH_PATTERN = re.compile(r"^[-a-zA-Z0-9_*]+(\.[-a-zA-Z0-9_*]+)*\.?$")
_ICMP_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_EXTENDED_PROTOCOLS = ("VRRP", "IGMP", "GRE", "IPIP", "IPV6", "ESP", "AH")


@dataclass
class _Context:
    """What a rule's parse needs to know about the resource it is in."""

    namespace: str  # "" for CCNP
    host: bool = False  # nodeSelector policy
    warnings: list[str] = field(default_factory=list)


def parse_cilium_policy(raw: Raw) -> tuple[Policy, ...]:
    kind = raw.get("kind")
    if kind not in (CNP, CCNP):
        raise ValidationError("kind", f"must be {CNP!r} or {CCNP!r}")
    expect_kind(raw, kind, API_VERSION)
    strict("", raw, _TOP_FIELDS)
    m = meta(raw, namespaced=kind == CNP)
    has_spec = raw.get("spec") is not None
    has_specs = raw.get("specs") is not None
    if has_spec and has_specs:
        raise ValidationError("specs", "exactly one of spec or specs may be set")
    if has_spec:
        items: list[tuple[str, Any]] = [("spec", raw["spec"])]
    elif has_specs:
        specs = lst("specs", raw["specs"])
        if not specs:
            raise ValidationError("specs", "must not be empty")
        items = [(f"specs[{i}]", s) for i, s in enumerate(specs)]
    else:
        raise ValidationError("spec", "required (or specs)")
    out = []
    for index, (path, spec) in enumerate(items):
        ctx = _Context(m.namespace, warnings=list(m.warnings))
        subject, rules, deny_in, deny_out = _rule_set(path, spec, kind, ctx)
        out.append(
            Policy(
                kind=kind,
                namespace=m.namespace,
                name=m.name,
                subject=subject,
                rules=rules,
                default_deny_ingress=deny_in,
                default_deny_egress=deny_out,
                spec_index=index,
                uid=m.uid,
                warnings=tuple(ctx.warnings),
            )
        )
    return tuple(out)


def _rule_set(
    path: str, value: Any, kind: PolicyKind, ctx: _Context
) -> tuple[Selector, tuple[Rule, ...], bool, bool]:
    spec = obj(path, value)
    strict(path, spec, RuleRaw.__optional_keys__)
    subject = _subject(path, spec, kind, ctx)
    rules: list[Rule] = []
    counts = {"ingress": 0, "egress": 0}
    for key, direction, action in _LISTS:
        entries = lst(at(path, key), spec.get(key))
        counts[direction] += len(entries)
        for i, entry in enumerate(entries):
            rules.append(_entry(f"{path}.{key}[{i}]", entry, direction, action, i, ctx))
    if not rules:
        raise ValidationError(
            path, "needs at least one of ingress, ingressDeny, egress, egressDeny"
        )
    dd = obj(at(path, "enableDefaultDeny"), spec.get("enableDefaultDeny"))
    strict(at(path, "enableDefaultDeny"), dd, DefaultDenyRaw.__optional_keys__)
    deny = {}
    for direction in ("ingress", "egress"):
        flag = boolean(f"{path}.enableDefaultDeny.{direction}", dd.get(direction))
        has_rules = counts[direction] > 0
        # Unset: deny iff the rule has entries this way; true without entries
        # has no effect in Cilium (cilium/cilium#35558).
        deny[direction] = has_rules and flag is not False
        if flag and not has_rules:
            ctx.warnings.append(
                f"{path}.enableDefaultDeny.{direction}: has no effect without "
                f"{direction} or {direction}Deny rules"
            )
    _labels(at(path, "labels"), spec.get("labels"))
    string(at(path, "description"), spec.get("description"))
    _log(at(path, "log"), spec.get("log"))
    return subject, tuple(rules), deny["ingress"], deny["egress"]


def _subject(path: str, spec: Raw, kind: PolicyKind, ctx: _Context) -> Selector:
    has_ep = spec.get("endpointSelector") is not None
    has_node = spec.get("nodeSelector") is not None
    if has_node and kind == CNP:
        raise ValidationError(
            at(path, "nodeSelector"), "only allowed in CiliumClusterwideNetworkPolicy"
        )
    if has_ep and has_node:
        raise ValidationError(at(path, "nodeSelector"), "cannot be used with endpointSelector")
    if has_node:
        ctx.host = True
        selector(at(path, "nodeSelector"), spec["nodeSelector"], sources=True)
        ctx.warnings.append(
            f"{path}.nodeSelector: host policies (nodeSelector) are not enforced yet;"
            " the policy selects no endpoint"
        )
        return SELECTS_NOTHING
    if not has_ep:
        raise ValidationError(
            at(path, "endpointSelector"), "required (exactly one of endpointSelector, nodeSelector)"
        )
    where = at(path, "endpointSelector")
    reqs = selector(where, spec["endpointSelector"], sources=True)
    if kind == CCNP:
        return canonical(reqs)
    # A CNP applies in its own namespace only, whatever the selector says.
    own = namespace_is(ctx.namespace)
    kept = [r for r in reqs if not is_namespace_key(r.key)]
    if any(r.operator != "In" or r.values != own.values for r in reqs if r not in kept):
        ctx.warnings.append(
            f"{where}: a namespace requirement other than {ctx.namespace!r} was replaced;"
            " a CiliumNetworkPolicy selects endpoints of its own namespace only"
        )
    return canonical([*kept, own])


def _peer_selector(path: str, value: Any, ctx: _Context) -> Selector:
    reqs = selector(path, value, sources=True)
    keys = [r.key for r in reqs]
    if any(is_reserved_key(k) or is_namespace_key(k) for k in keys):
        return canonical(reqs)
    if not ctx.namespace:
        return canonical([*reqs, NAMESPACE_EXISTS])
    if any(is_namespace_labels_key(k) for k in keys):
        return canonical(reqs)
    return canonical([*reqs, namespace_is(ctx.namespace)])


# ---- one ingress/egress(/Deny) entry ---------------------------------------


def _entry(
    path: str, value: Any, direction: Direction, action: Action, index: int, ctx: _Context
) -> Rule:
    entry = obj(path, value)
    if action == "deny":
        _forbid_in_deny(path, entry)
    strict(path, entry, _ENTRY_FIELDS[direction, action], _UNSUPPORTED)
    prefix = "from" if direction == "ingress" else "to"
    requires = f"{prefix}Requires"
    if lst(at(path, requires), entry.get(requires)):
        raise ValidationError(
            at(path, requires),
            "removed in Cilium 1.19 (MaxItems=0); add the labels to each rule's selectors",
        )
    members = [k for k in _L3[direction] if lst(at(path, k), entry.get(k))]
    if len(members) > 1:
        raise ValidationError(
            at(path, members[1]),
            f"cannot be combined with {members[0]} in one entry (Cilium: combining"
            " L3 kinds is not supported); write one entry per kind",
        )
    to_ports = lst(at(path, "toPorts"), entry.get("toPorts"))
    icmps = lst(at(path, "icmps"), entry.get("icmps"))
    if icmps and to_ports:
        raise ValidationError(
            at(path, "icmps"), "may not be used with toPorts in the same entry; write two entries"
        )
    not_enforced: list[str] = []
    peers = _peers(path, entry, members[0] if members else "", bool(to_ports), ctx)
    if members and members[0] == "toFQDNs":
        not_enforced.append(members[0])
        ctx.warnings.append(
            f"{path}.{members[0]}: accepted but not enforced yet; the entry "
            f"{_matches_nothing(action)} until DNS-based policy is implemented"
        )
    ports, l7 = _port_rules(path, to_ports, direction, action, ctx)
    not_enforced.extend(l7)
    if to_ports and not ports:
        peers = Peers()
        ctx.warnings.append(f"{path}.toPorts: lists no ports; the entry {_matches_nothing(action)}")
    if icmps:
        _icmps(at(path, "icmps"), icmps)
        peers = Peers()
        not_enforced.append("icmps")
        ctx.warnings.append(
            f"{path}.icmps: ICMP rules are not enforced yet; the entry {_matches_nothing(action)}"
        )
    return Rule(direction, action, peers, ports, tuple(not_enforced), index)


def _matches_nothing(action: Action) -> str:
    return "allows nothing" if action == "allow" else "denies nothing"


def _forbid_in_deny(path: str, entry: Raw) -> None:
    for key in ("toFQDNs", "authentication"):
        if key in entry:
            raise ValidationError(at(path, key), _DENY_FORBIDDEN[key])
    for i, item in enumerate(lst(at(path, "toPorts"), entry.get("toPorts"))):
        if isinstance(item, dict):
            for key in ("rules", "serverNames"):
                if key in item:
                    raise ValidationError(f"{path}.toPorts[{i}].{key}", _DENY_FORBIDDEN[key])


def _peers(path: str, entry: Raw, kind: str, has_ports: bool, ctx: _Context) -> Peers:
    if not kind:
        # No L3 field: an L4-only entry is for any peer; ``{}`` is for none.
        return Peers(any_peer=True) if has_ports else Peers()
    items = lst(at(path, kind), entry[kind])
    where = [f"{path}.{kind}[{i}]" for i in range(len(items))]
    if kind.endswith("Endpoints"):
        sels = tuple(_peer_selector(w, item, ctx) for w, item in zip(where, items, strict=True))
        return Peers(selectors=sels)
    if kind.endswith("Entities"):
        entities: list[str] = []
        for w, item in zip(where, items, strict=True):
            if item not in ENTITIES:
                raise ValidationError(w, f"unsupported entity {item!r} ({', '.join(ENTITIES)})")
            if item not in entities:
                entities.append(item)
        return Peers(entities=tuple(entities))
    if kind.endswith("CIDR"):
        return Peers(
            cidrs=tuple(
                CIDRPeer(str(network(w, item, bare_ip=True)))
                for w, item in zip(where, items, strict=True)
            )
        )
    if kind.endswith("CIDRSet"):
        return Peers(cidrs=tuple(_cidr_rule(w, item) for w, item in zip(where, items, strict=True)))
    if kind == "toFQDNs":
        for w, item in zip(where, items, strict=True):
            _fqdn_selector(w, item)
        return Peers()
    return Peers(  # toServices
        services=tuple(_service(w, item, ctx) for w, item in zip(where, items, strict=True))
    )


def _cidr_rule(path: str, value: Any) -> CIDRPeer:
    raw = obj(path, value)
    strict(path, raw, CIDRRuleRaw.__optional_keys__, _UNSUPPORTED)
    return cidr_peer(
        path, raw.get("cidr"), raw.get("except"), strict_subset=False, match_pods=False
    )


def _fqdn_selector(path: str, value: Any) -> None:
    raw = obj(path, value)
    strict(path, raw, FQDNSelectorRaw.__optional_keys__)
    set_keys = [k for k in ("matchName", "matchPattern") if raw.get(k) not in (None, "")]
    if len(set_keys) != 1:
        raise ValidationError(path, "exactly one of matchName, matchPattern is required")
    key = set_keys[0]
    text = string(at(path, key), raw[key])
    pattern = _MATCH_NAME if key == "matchName" else _MATCH_PATTERN
    if len(text) > 255 or not pattern.match(text):
        raise ValidationError(at(path, key), f"{text!r} is not a valid DNS {key}")


def _service(path: str, value: Any, ctx: _Context) -> ServicePeer:
    raw = obj(path, value)
    strict(path, raw, ServiceRaw.__optional_keys__)
    set_keys = [k for k in ("k8sService", "k8sServiceSelector") if raw.get(k) is not None]
    if len(set_keys) != 1:
        raise ValidationError(path, "exactly one of k8sService, k8sServiceSelector is required")
    where = at(path, set_keys[0])
    svc = obj(where, raw[set_keys[0]])
    # As Cilium: without a namespace, the policy's own (any, for a clusterwide policy).
    namespace = ctx.namespace
    if svc.get("namespace") is not None:
        namespace = dns_label(at(where, "namespace"), svc["namespace"])
    if set_keys[0] == "k8sService":
        strict(where, svc, K8sServiceRaw.__optional_keys__)
        name = dns_label(at(where, "serviceName"), svc.get("serviceName"))
        return ServicePeer(name=name, namespace=namespace)
    strict(where, svc, K8sServiceSelectorRaw.__optional_keys__)
    if svc.get("selector") is None:
        raise ValidationError(at(where, "selector"), "required")
    reqs = selector(at(where, "selector"), svc["selector"], sources=False)
    return ServicePeer(namespace=namespace, selector=canonical(reqs))


def _icmps(path: str, items: list[Any]) -> None:
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        rule = obj(where, item)
        strict(where, rule, ICMPRuleRaw.__optional_keys__)
        fields = lst(at(where, "fields"), rule.get("fields"))
        if len(fields) > MAX_ICMP_FIELDS:
            raise ValidationError(
                at(where, "fields"), f"too many fields, the max is {MAX_ICMP_FIELDS}"
            )
        for j, f in enumerate(fields):
            fpath = f"{where}.fields[{j}]"
            fld = obj(fpath, f)
            strict(fpath, fld, ICMPFieldRaw.__optional_keys__)
            if fld.get("family") not in (None, "", "IPv4", "IPv6"):
                raise ValidationError(at(fpath, "family"), f"{fld['family']!r} is not IPv4 or IPv6")
            icmp_type = fld.get("type")
            ok = (
                isinstance(icmp_type, int)
                and not isinstance(icmp_type, bool)
                and 0 <= icmp_type <= 255
            ) or (
                isinstance(icmp_type, str)
                and (
                    (icmp_type.isdigit() and int(icmp_type) <= 255)
                    or bool(_ICMP_TYPE_NAME.match(icmp_type))
                )
            )
            if not ok:
                raise ValidationError(
                    at(fpath, "type"), f"{icmp_type!r} is not an ICMP type (0-255 or a name)"
                )


# ---- toPorts ---------------------------------------------------------------


def _port_rules(
    path: str, items: list[Any], direction: Direction, action: Action, ctx: _Context
) -> tuple[tuple[PortProtocol, ...], list[str]]:
    """All ports of the entry's toPorts, and the not-enforced parts by relative path."""
    ports: list[PortProtocol] = []
    not_enforced: list[str] = []
    fields = (
        PortRuleRaw.__optional_keys__ if action == "allow" else PortDenyRuleRaw.__optional_keys__
    )
    for i, item in enumerate(items):
        rel = f"toPorts[{i}]"
        where = f"{path}.{rel}"
        raw = obj(where, item)
        strict(where, raw, fields, _UNSUPPORTED)
        raw_ports = lst(at(where, "ports"), raw.get("ports"))
        if len(raw_ports) > MAX_PORTS:
            raise ValidationError(at(where, "ports"), f"too many ports, the max is {MAX_PORTS}")
        parsed = [_port(f"{where}.ports[{j}]", p) for j, p in enumerate(raw_ports)]
        kinds = _l7_rules(at(where, "rules"), raw.get("rules"), direction, parsed, ctx)
        if kinds and not parsed:
            parsed = [PortProtocol()]  # L7 rules without ports apply on every port
        ports.extend(parsed)
        for kind in kinds:
            not_enforced.append(f"{rel}.rules.{kind}")
            ctx.warnings.append(
                f"{where}.rules.{kind}: L7 rules are accepted but not enforced yet; the rule's"
                " L3/L4 part is enforced (every request on those ports is allowed)"
            )
        names = lst(at(where, "serverNames"), raw.get("serverNames"))
        for j, name in enumerate(names):
            string(f"{where}.serverNames[{j}]", name, required=True)
        if names:
            if kinds:
                raise ValidationError(
                    at(where, "serverNames"),
                    "not allowed with L7 rules without TLS termination",
                )
            not_enforced.append(f"{rel}.serverNames")
            ctx.warnings.append(
                f"{where}.serverNames: TLS SNI filtering is not enforced yet; the ports are"
                " allowed for every server name"
            )
    return tuple(ports), not_enforced


def _port(path: str, value: Any) -> PortProtocol:
    raw = obj(path, value)
    strict(path, raw, PortProtocolRaw.__optional_keys__)
    protocol = _protocol(at(path, "protocol"), raw.get("protocol"))
    port = raw.get("port")
    number, name = 0, ""
    if isinstance(port, bool) or not isinstance(port, int | str | None):
        raise ValidationError(at(path, "port"), f"must be a port number or name, not {port!r}")
    if isinstance(port, str) and port.isascii() and port.isdigit():
        port = int(port)
    if isinstance(port, int):
        if not 0 <= port <= 65535:
            raise ValidationError(at(path, "port"), f"{port} is not in 0..65535")
        number = port
    elif port:  # "" and None mean every port
        name = named_port(at(path, "port"), port)
    end = raw.get("endPort")
    if end is None or end == 0:
        return PortProtocol(number, 0, protocol, name)
    where = at(path, "endPort")
    if isinstance(end, bool) or not isinstance(end, int) or not 0 <= end <= 65535:
        raise ValidationError(where, f"must be a port number in 0..65535, not {end!r}")
    if name:
        raise ValidationError(where, "may not be used with a named port")
    if number == 0:
        raise ValidationError(where, "requires a port other than 0")
    if end < number:
        raise ValidationError(where, f"{end} must be greater than or equal to port {number}")
    return PortProtocol(number, end if end > number else 0, protocol)


def _protocol(path: str, value: Any) -> L4Protocol:
    if value is None or value == "":
        return "ANY"
    for proto in PROTOCOLS:
        if value == proto:
            return proto
    if isinstance(value, str) and value.upper().startswith("ICMP"):
        raise ValidationError(path, f"{value!r} is not a port protocol; use icmps")
    if isinstance(value, str) and value.upper() in _EXTENDED_PROTOCOLS:
        raise ValidationError(path, f"extended IP protocol {value!r} is not supported")
    raise ValidationError(path, f"{value!r} is not one of {', '.join(PROTOCOLS)}")


def _l7_rules(
    path: str, value: Any, direction: Direction, ports: list[PortProtocol], ctx: _Context
) -> list[L7Kind]:
    """Check ``rules``; return the L7 kinds present (at most one)."""
    raw = obj(path, value)
    strict(path, raw, L7RulesRaw.__optional_keys__)
    kinds: list[L7Kind] = [
        k for k in ("http", "dns", "kafka", "l7") if lst(at(path, k), raw.get(k))
    ]
    l7proto = string(at(path, "l7proto"), raw.get("l7proto"))
    if "l7" in kinds and not l7proto:
        raise ValidationError(at(path, "l7proto"), "required with l7 rules")
    if not kinds:
        return []
    if len(kinds) > 1:
        raise ValidationError(
            at(path, kinds[1]), f"only one L7 protocol per port rule (also has {kinds[0]})"
        )
    kind = kinds[0]
    if kind == "dns" and direction == "ingress":
        raise ValidationError(at(path, "dns"), "DNS rules are not allowed on ingress")
    if ctx.host and (direction == "ingress" or kind != "dns"):
        raise ValidationError(at(path, kind), "host policies support only DNS L7 rules on egress")
    port_path = path.rsplit(".", 1)[0] + ".ports"
    if kind == "dns" and not ports:
        raise ValidationError(port_path, "port 53 must be specified for DNS rules")
    for j, p in enumerate(ports):
        if p.port == 0 and not p.name:
            raise ValidationError(
                f"{port_path}[{j}].port", "L7 rules can not be used when a port is 0"
            )
        if kind == "dns" and p.end_port:
            raise ValidationError(
                f"{port_path}[{j}].endPort", "DNS rules do not support port ranges"
            )
        if kind != "dns" and p.protocol != "TCP":
            raise ValidationError(
                f"{port_path}[{j}].protocol",
                f"L7 rules can only apply to TCP (not {p.protocol}) except for DNS rules",
            )
    for i, item in enumerate(lst(at(path, kind), raw[kind])):
        _l7_item(f"{path}.{kind}[{i}]", kind, item)
    return kinds


_HTTP_FIELDS = ("method", "path", "host", "headers", "headerMatches")
_KAFKA_FIELDS = ("role", "apiKey", "apiVersion", "clientID", "topic")


def _l7_item(path: str, kind: L7Kind, value: Any) -> None:
    raw = obj(path, value)
    if kind == "dns":
        _fqdn_selector(path, raw)
    elif kind == "http":
        strict(path, raw, _HTTP_FIELDS)
        for key in ("method", "path", "host"):
            string(at(path, key), raw.get(key))
        for j, header in enumerate(lst(at(path, "headers"), raw.get("headers"))):
            string(f"{path}.headers[{j}]", header, required=True)
        for j, match in enumerate(lst(at(path, "headerMatches"), raw.get("headerMatches"))):
            hm = obj(f"{path}.headerMatches[{j}]", match)
            string(f"{path}.headerMatches[{j}].name", hm.get("name"), required=True)
    elif kind == "kafka":
        strict(path, raw, _KAFKA_FIELDS)
        role = raw.get("role")
        if role is not None and role not in ("produce", "consume"):
            raise ValidationError(at(path, "role"), f"{role!r} is not produce or consume")
        if role is not None and raw.get("apiKey") is not None:
            raise ValidationError(at(path, "apiKey"), "may not be used with role")
        topic = string(at(path, "topic"), raw.get("topic"))
        if len(topic) > 249:
            raise ValidationError(at(path, "topic"), "longer than 249 characters")
    else:
        for key, val in raw.items():
            if not isinstance(val, str):
                raise ValidationError(at(path, str(key)), "must be a string")


# ---- rule metadata ---------------------------------------------------------


def _labels(path: str, value: Any) -> None:
    for i, item in enumerate(lst(path, value)):
        where = f"{path}[{i}]"
        raw = obj(where, item)
        strict(where, raw, PolicyLabelRaw.__optional_keys__)
        string(at(where, "key"), raw.get("key"), required=True)
        string(at(where, "value"), raw.get("value"))
        string(at(where, "source"), raw.get("source"))


def _log(path: str, value: Any) -> None:
    raw = obj(path, value)
    strict(path, raw, LogRaw.__optional_keys__)
    text = string(at(path, "value"), raw.get("value"))
    if len(text) > 32 or not text.isprintable():
        raise ValidationError(at(path, "value"), "at most 32 printable characters")
