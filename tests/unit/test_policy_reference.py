"""The reference evaluator, and the property: datapath simulation over resolve() == reference."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axoneme.identity.reserved import RESERVED, reserved_labels
from axoneme.labels.model import Label, LabelSet
from axoneme.policy import intervals as iv
from axoneme.policy.mapsim import simulate
from axoneme.policy.reference import LocalEndpoint, Peer, RemotePeer, evaluate
from axoneme.policy.resolve import resolve
from axoneme.policy.selector import SelectorCache
from axoneme.policy.types import (
    ENTITIES,
    Action,
    CIDRPeer,
    Direction,
    EndpointPolicy,
    L4Protocol,
    Operator,
    Peers,
    Policy,
    PolicyContext,
    PortProtocol,
    PortVerdicts,
    Requirement,
    Rule,
    Selector,
)

NamedPorts = Mapping[str, frozenset[tuple[str, int]]]


def labels(*texts: str) -> LabelSet:
    return frozenset(Label.parse(t) for t in texts)


def app(name: str) -> Selector:
    return Selector((Requirement("k8s:app", "In", frozenset({name})),))


def cnp(name: str, *rules: Rule, subject: Selector | None = None, **flags: bool) -> Policy:
    directions = {r.direction for r in rules}
    return Policy(
        "CiliumNetworkPolicy",
        "demo",
        name,
        subject if subject is not None else app("server"),
        rules,
        flags.get("ingress", "ingress" in directions),
        flags.get("egress", "egress" in directions),
    )


IDS: dict[int, LabelSet] = {
    **{n: reserved_labels(name) for name, n in RESERVED.items()},
    300: labels("k8s:app=client", "k8s:io.kubernetes.pod.namespace=demo"),
    301: labels("k8s:app=server", "k8s:io.kubernetes.pod.namespace=demo"),
    1 << 24 | 1: labels("cidr:10.0.0.0/8", "reserved:world"),
}
CLIENT = LocalEndpoint(1, 300, IDS[300], "10.0.1.1")
SERVER = LocalEndpoint(2, 301, IDS[301], "10.0.1.2", {"http": frozenset({("TCP", 8080)})})
WORLD = RemotePeer(2, IDS[2], "1.1.1.1")
CTX = PolicyContext(IDS, {})


def test_l3_allow_l4_deny_example() -> None:
    policies = [
        cnp(
            "allow",
            Rule("ingress", "allow", Peers(selectors=(app("client"),))),
            Rule("ingress", "deny", Peers(any_peer=True), (PortProtocol(80, protocol="TCP"),)),
        )
    ]
    d80 = evaluate(CLIENT, SERVER, "TCP", 80, policies, CTX)
    assert d80.verdict == "DENIED"
    assert d80.ingress is not None and d80.ingress.outcome == "denied"
    assert [str(r) for r in d80.ingress.denied_by] == [
        "CiliumNetworkPolicy/demo/allow ingressDeny[0]"
    ]
    assert [str(r) for r in d80.ingress.allowed_by] == ["CiliumNetworkPolicy/demo/allow ingress[0]"]
    assert d80.egress is not None and d80.egress.outcome == "not-enforced"
    assert evaluate(CLIENT, SERVER, "TCP", 81, policies, CTX).verdict == "ALLOWED"
    assert evaluate(CLIENT, SERVER, "ICMP", 0, policies, CTX).verdict == "ALLOWED"
    assert evaluate(WORLD, SERVER, "TCP", 81, policies, CTX).verdict == "DENIED"


def test_l3_deny_example() -> None:
    policies = [
        cnp("allow-all", Rule("ingress", "allow", Peers(any_peer=True))),
        cnp("deny", Rule("ingress", "deny", Peers(selectors=(app("client"),)))),
    ]
    for proto, port in (("TCP", 80), ("UDP", 53), ("ICMP", 0)):
        assert evaluate(CLIENT, SERVER, proto, port, policies, CTX).verdict == "DENIED"
    assert evaluate(WORLD, SERVER, "TCP", 80, policies, CTX).verdict == "ALLOWED"


def test_both_sides_must_allow() -> None:
    policies = [
        cnp(
            "server-in",
            Rule(
                "ingress", "allow", Peers(selectors=(app("client"),)), (PortProtocol(name="http"),)
            ),
        ),
        cnp(
            "client-out",
            Rule("egress", "allow", Peers(entities=("world",))),
            subject=app("client"),
        ),
    ]
    d = evaluate(CLIENT, SERVER, "TCP", 8080, policies, CTX)
    assert d.ingress is not None and d.ingress.outcome == "allowed"
    assert d.egress is not None and d.egress.outcome == "default-deny"
    assert d.egress.default_deny_by == ("CiliumNetworkPolicy/demo/client-out",)
    assert d.verdict == "DENIED"
    assert evaluate(CLIENT, WORLD, "TCP", 1, policies, CTX).verdict == "ALLOWED"
    d = evaluate(WORLD, SERVER, "TCP", 8080, policies, CTX)
    assert d.egress is None and d.verdict == "DENIED"
    audit = dataclasses.replace(CTX, audit=True)
    assert evaluate(CLIENT, SERVER, "TCP", 8080, policies, audit).verdict == "AUDIT"
    never = dataclasses.replace(CTX, mode="never")
    assert evaluate(WORLD, SERVER, "TCP", 1, policies, never).verdict == "ALLOWED"
    always = dataclasses.replace(CTX, mode="always")
    assert evaluate(SERVER, WORLD, "TCP", 1, [], always).verdict == "DENIED"


def test_cnp_cidr_does_not_match_pods_but_ipblock_does() -> None:
    cnp_cidr = cnp("c", Rule("ingress", "allow", Peers(cidrs=(CIDRPeer("10.0.0.0/8"),))))
    ipblock = cnp("k", Rule("ingress", "allow", Peers(cidrs=(CIDRPeer("10.0.0.0/8", (), True),))))
    assert evaluate(CLIENT, SERVER, "TCP", 1, [cnp_cidr], CTX).verdict == "DENIED"
    assert evaluate(CLIENT, SERVER, "TCP", 1, [ipblock], CTX).verdict == "ALLOWED"
    cidr_peer = RemotePeer(1 << 24 | 1, IDS[1 << 24 | 1], "10.9.9.9")
    assert evaluate(cidr_peer, SERVER, "TCP", 1, [cnp_cidr], CTX).verdict == "ALLOWED"


# ---- the property: mapsim(resolve(...)) == reference ------------------------------

C = 1 << 24
PREFIXES = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.1.2.3/32",
    "192.168.0.0/16",
    "8.8.8.0/24",
]
IPS = [
    "10.1.2.3",
    "10.1.2.4",
    "10.1.2.200",
    "10.1.9.9",
    "10.7.0.1",
    "192.168.3.4",
    "8.8.8.8",
    "1.2.3.4",
]
KEYS = [
    "app",
    "k8s:app",
    "container:app",
    "tier",
    "k8s:io.kubernetes.pod.namespace",
    "reserved:world",
]
VALUES = ["a", "b", "ns1", ""]
DIRECTIONS: list[Direction] = ["ingress", "egress"]
PROTOCOLS: list[L4Protocol] = ["TCP", "UDP", "SCTP", "ANY"]
OPERATORS: list[Operator] = ["In", "NotIn", "Exists", "DoesNotExist"]
POD_LABELS = [
    "k8s:app=a",
    "k8s:app=b",
    "container:app=a",
    "k8s:tier=a",
    "k8s:io.kubernetes.pod.namespace=ns1",
    "k8s:io.kubernetes.pod.namespace=ns2",
]
NAMED_ENTRIES: dict[str, list[frozenset[tuple[str, int]]]] = {
    "http": [frozenset({("TCP", 80)}), frozenset({("TCP", 8080)})],
    "dns": [frozenset({("UDP", 53), ("TCP", 53)}), frozenset({("UDP", 53)})],
    "metrics": [frozenset({("TCP", 9090)}), frozenset({("SCTP", 9090)})],
}
PORT_NAMES = [*NAMED_ENTRIES, "missing"]
PACKETS = [
    *(("TCP", port) for port in (53, 80, 81, 443, 8080, 8081, 9090)),
    ("UDP", 53),
    ("UDP", 80),
    ("SCTP", 80),
    ("SCTP", 9090),
    ("ICMP", 0),
]


@st.composite
def named_ports(draw: st.DrawFn) -> NamedPorts:
    names = draw(st.lists(st.sampled_from(list(NAMED_ENTRIES)), unique=True, max_size=3))
    return {name: draw(st.sampled_from(NAMED_ENTRIES[name])) for name in names}


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    reqs = []
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(OPERATORS))
        values = (
            draw(st.frozensets(st.sampled_from(VALUES), min_size=1, max_size=2))
            if op in ("In", "NotIn")
            else frozenset()
        )
        reqs.append(Requirement(draw(st.sampled_from(KEYS)), op, values))
    return Selector(tuple(reqs))


@st.composite
def cidr_peers(draw: st.DrawFn) -> CIDRPeer:
    cidr = draw(st.sampled_from([*PREFIXES, "0.0.0.0/0", "0.0.0.0/0"]))
    outer = ipaddress.IPv4Network(cidr)
    inside = [p for p in PREFIXES if ipaddress.IPv4Network(p).subnet_of(outer) and p != cidr]
    excepts: list[str] = []
    with_excepts: int = draw(st.integers(0, 3))
    if inside and with_excepts:
        excepts = draw(st.lists(st.sampled_from(inside), unique=True, min_size=1, max_size=2))
    return CIDRPeer(cidr, tuple(excepts), draw(st.booleans()))


@st.composite
def port_protocols(draw: st.DrawFn) -> PortProtocol:
    protocol = draw(st.sampled_from(PROTOCOLS))
    if draw(st.integers(0, 3)) == 0:
        return PortProtocol(name=draw(st.sampled_from(PORT_NAMES)), protocol=protocol)
    port = draw(st.sampled_from([0, 53, 80, 443, 8080]))
    end = draw(st.sampled_from([0, 0, port + 1, port + 10, 9090])) if port else 0
    return PortProtocol(port, end, protocol)


@st.composite
def peers(draw: st.DrawFn) -> Peers:
    # one peer kind per entry, as in Cilium; occasionally a mix (the model allows it)
    kind = draw(st.sampled_from(["any", "selectors", "entities", "cidrs", "cidrs", "mixed"]))
    if kind == "any":
        return Peers(any_peer=True)
    n = 0 if kind == "mixed" else 1
    return Peers(
        selectors=tuple(draw(st.lists(selectors(), min_size=n, max_size=2)))
        if kind in ("selectors", "mixed")
        else (),
        entities=tuple(draw(st.lists(st.sampled_from(ENTITIES), min_size=n, max_size=2)))
        if kind in ("entities", "mixed")
        else (),
        cidrs=tuple(draw(st.lists(cidr_peers(), min_size=n, max_size=2)))
        if kind in ("cidrs", "mixed")
        else (),
    )


@st.composite
def policies(draw: st.DrawFn, n: int) -> Policy:
    rules: list[Rule] = []
    counters: dict[tuple[str, str], int] = {}
    for _ in range(draw(st.integers(0, 4))):
        direction: Direction = draw(st.sampled_from(DIRECTIONS))
        action: Action = "deny" if draw(st.integers(0, 3)) == 0 else "allow"
        index = counters.get((direction, action), 0)
        counters[(direction, action)] = index + 1
        ports = (
            ()
            if draw(st.integers(0, 4)) == 0
            else tuple(draw(st.lists(port_protocols(), min_size=1, max_size=2)))
        )
        rules.append(Rule(direction, action, draw(peers()), ports, index=index))
    dirs = {r.direction for r in rules}
    subject = Selector() if draw(st.integers(0, 2)) else draw(selectors())
    return Policy(
        draw(st.sampled_from(["NetworkPolicy", "CiliumNetworkPolicy"])),
        "ns1",
        f"p{n}",
        subject,
        tuple(rules),
        draw(st.booleans()) if draw(st.booleans()) else "ingress" in dirs,
        draw(st.booleans()) if draw(st.booleans()) else "egress" in dirs,
    )


@dataclasses.dataclass(frozen=True)
class World:
    ctx: PolicyContext
    locals: tuple[LocalEndpoint, ...]
    remotes: tuple[RemotePeer, ...]
    policies: tuple[Policy, ...]
    flows: tuple[tuple[Peer, Peer, str, int], ...]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    identities: dict[int, LabelSet] = {n: reserved_labels(name) for name, n in RESERVED.items()}
    for i, prefix in enumerate(draw(st.lists(st.sampled_from(PREFIXES), unique=True, max_size=4))):
        identities[C | (i + 1)] = labels(f"cidr:{prefix}", "reserved:world")
    pods = list(range(256, 256 + draw(st.integers(1, 4))))
    named: dict[int, NamedPorts] = {}
    for pod in pods:
        identities[pod] = labels(*draw(st.frozensets(st.sampled_from(POD_LABELS), max_size=3)))
        named[pod] = draw(named_ports())
    if draw(st.booleans()):
        named[1] = draw(named_ports())  # host-network ports
    ctx = PolicyContext(
        identities,
        named,
        draw(st.sampled_from(["default", "default", "default", "always", "never"])),
        draw(st.integers(0, 4)) == 0,
    )
    local_eps = tuple(
        LocalEndpoint(
            i + 1, ident, identities[ident], draw(st.sampled_from(IPS)), draw(named_ports())
        )
        for i, ident in enumerate(draw(st.lists(st.sampled_from(pods), min_size=1, max_size=3)))
    )
    cidr_ids = [i for i in identities if i & C]
    remote_ids = draw(
        st.lists(st.sampled_from([2, 1, *sorted(identities)]), min_size=1, max_size=3)
    )
    remote_ids += draw(st.lists(st.sampled_from(cidr_ids), max_size=2)) if cidr_ids else []
    remotes = tuple(
        RemotePeer(ident, identities[ident], draw(st.sampled_from(IPS))) for ident in remote_ids
    )
    pols = tuple(draw(policies(n)) for n in range(draw(st.integers(1, 4))))
    everyone: list[Peer] = [*local_eps, *remotes]
    flows = []
    for src in everyone:  # every pair with a local end, every packet
        for dst in everyone:
            if isinstance(src, LocalEndpoint) or isinstance(dst, LocalEndpoint):
                flows.extend((src, dst, proto, port) for proto, port in PACKETS)
    return World(ctx, local_eps, remotes, pols, tuple(flows))


def check_verdicts(v: PortVerdicts) -> None:
    for part in (v.allow, v.deny):
        assert part == iv.normalize(part)
    assert iv.intersect(v.allow, v.deny) == ()


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(worlds())
def test_datapath_simulation_over_resolve_agrees_with_reference(world: World) -> None:
    cache = SelectorCache(world.ctx.identities)
    resolved: dict[int, EndpointPolicy] = {}
    for ep in world.locals:
        resolved[ep.id] = resolve(ep.ref(), world.policies, world.ctx, cache)
        for d in (resolved[ep.id].ingress, resolved[ep.id].egress):
            for v in [*d.by_identity.values(), *d.by_prefix.values()]:
                check_verdicts(v)
    for src, dst, proto, port in world.flows:
        expected = evaluate(src, dst, proto, port, world.policies, world.ctx)
        got = simulate(
            resolved[src.id] if isinstance(src, LocalEndpoint) else None,
            resolved[dst.id] if isinstance(dst, LocalEndpoint) else None,
            src_identity=src.identity,
            src_ip=src.ip,
            dst_identity=dst.identity,
            dst_ip=dst.ip,
            proto=proto,
            port=port,
        )
        flow = (src, dst, proto, port)
        for mine, theirs in ((got.egress, expected.egress), (got.ingress, expected.ingress)):
            assert (mine is None) == (theirs is None), flow
            if mine is not None and theirs is not None:
                assert (mine.outcome, mine.verdict) == (theirs.outcome, theirs.verdict), (
                    flow,
                    mine,
                    theirs,
                )
        assert got.verdict == expected.verdict, flow
