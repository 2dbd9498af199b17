"""The real datapath against the reference evaluator, flow by flow.

Each scenario is random label sets and identities, random NetworkPolicy-like
and CiliumNetworkPolicy-like ``Policy`` values, an enforcement mode and the
audit flag. The policy of every local endpoint is computed with ``resolve``,
turned into a ``MapState`` and written, with the ``axo_lxc`` entries and the
ipcache, into the REAL pinned maps through ``KernelDatapath``. Each flow is a
crafted packet run through the REAL ``from_container`` (egress of the source
endpoint) or ``to_container`` (ingress of the destination endpoint) program
with BPF_PROG_TEST_RUN, conntrack flushed before each one so every packet is a
new connection. The kernel's verdict (TC_ACT_OK / TC_ACT_SHOT) and its
POLICY_VERDICT event (FORWARDED / DROPPED / AUDIT, reason 0 / 133 / 181) must
equal what ``reference.evaluate`` (written independently of ``resolve``,
``intervals`` and the selector cache) says for that side.

The ipcache is derived as the agent derives it (``agent.enforcement``): CNP
CIDR peers (``match_pods=False``) give CIDR identities through
``cidr_prefixes`` and a ``LocalIdentityAllocator``, and ``desired_ipcache``
lays out nodes, pods and those prefixes; a peer's identity is the longest
ipcache match, ``world`` otherwise -- the same lookup the datapath makes. The
agent's ``allow_from_host`` adjustment is not applied: this checks ``resolve``.

Endpoints are the ends of two veth pairs in a private ``axt-po-…`` namespace
(BPF_PROG_TEST_RUN resolves ``skb->ifindex`` there); the datapath is loaded
into ``/sys/fs/bpf/axt-po-…``, removed afterwards.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axoneme.agent.enforcement import cidr_prefixes
from axoneme.datapath import events as ev
from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.ringbuf import EventReader
from axoneme.datapath.linux.writer import KernelDatapath
from axoneme.datapath.types import IPCacheEntry, LxcEntry
from axoneme.identity.allocator import LocalIdentityAllocator
from axoneme.identity.reserved import RESERVED, WORLD, reserved_labels
from axoneme.ipcache import model as ipcache_model
from axoneme.kit.netns import entered
from axoneme.labels.model import Label, LabelSet
from axoneme.policy import mapstate
from axoneme.policy.mapsim import longest_prefix, simulate
from axoneme.policy.reference import LocalEndpoint, Peer, RemotePeer, SideDecision, evaluate
from axoneme.policy.resolve import resolve
from axoneme.policy.selector import SelectorCache
from axoneme.policy.types import (
    ENTITIES,
    Action,
    CIDRPeer,
    Direction,
    EndpointPolicy,
    EnforcementMode,
    L4Protocol,
    Operator,
    Peers,
    Policy,
    PolicyContext,
    PolicyKind,
    PortProtocol,
    Requirement,
    Rule,
    Selector,
)
from privileged.bpfenv import private_datapath

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
TC_ACT_OK = 0
TC_ACT_SHOT = 2
PROTO_NUMBERS = {"ICMP": 1, "TCP": 6, "UDP": 17, "GRE": 47, "SCTP": 132}
SYN = 0x02
NS_KEY = "k8s:io.kubernetes.pod.namespace"
NamedPorts = Mapping[str, frozenset[tuple[str, int]]]

# The node layout (agent view): this node n1, the other n2.
SELF_NODE = "n1"
NODES = (
    ipcache_model.NodeAddresses("n1", "172.18.0.2", "10.42.1.1"),
    ipcache_model.NodeAddresses("n2", "172.18.0.3", "10.42.2.1"),
)
HOST_IP, REMOTE_NODE_IP = "10.42.1.1", "172.18.0.3"
# Addresses no pod or node holds: world, or a CIDR identity when a CNP CIDR covers them.
WORLD_IPS = (
    "198.51.100.5",
    "198.51.100.70",
    "198.51.100.130",
    "198.51.100.200",
    "198.51.100.201",
    "203.0.113.9",
    "10.42.2.99",
    "8.8.8.8",
)


# ---- packets -----------------------------------------------------------------------------


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def packet(src: str, dst: str, proto: str, sport: int, dport: int) -> bytes:
    """An Ethernet frame: a TCP SYN, a UDP datagram, an SCTP header, an ICMP echo or GRE."""
    if proto == "TCP":
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, SYN, 65535, 0, 0)
    elif proto == "UDP":
        l4 = struct.pack("!HHHH", sport, dport, 9, 0) + b"x"
    elif proto == "SCTP":
        l4 = struct.pack("!HHII", sport, dport, 0, 0)
    elif proto == "ICMP":
        l4 = struct.pack("!BBHHH", 8, 0, 0, 7, 1)
    else:  # GRE: no ports, looked up with port 0
        l4 = struct.pack("!HH", 0, 0x0800)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        1,
        0,
        64,
        PROTO_NUMBERS[proto],
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    header = header[:10] + struct.pack("!H", _csum(header)) + header[12:]
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + header + l4


def skb_ctx(ifindex: int) -> bytes:
    """A ``struct __sk_buff`` (192 bytes) with only ifindex (offset 40) set."""
    ctx = bytearray(192)
    struct.pack_into("=I", ctx, 40, ifindex)
    return bytes(ctx)


# ---- scenarios ---------------------------------------------------------------------------


def labels(*texts: str) -> LabelSet:
    return frozenset(Label.parse(t) for t in texts)


@dataclass(frozen=True)
class Flow:
    direction: Direction  # the side checked: egress at the local end, or ingress at it
    local: int  # index into Scenario.locals
    peer: int  # index into Scenario.peers()
    proto: str
    port: int


@dataclass(frozen=True, repr=False)
class Scenario:
    ctx: PolicyContext
    locals: tuple[LocalEndpoint, ...]
    remotes: tuple[RemotePeer, ...]
    policies: tuple[Policy, ...]
    ipcache: Mapping[str, IPCacheEntry] = field(default_factory=dict)
    flows: tuple[Flow, ...] = ()

    def peers(self) -> list[Peer]:
        return [*self.locals, *self.remotes]

    def __repr__(self) -> str:
        return f"<Scenario, {len(self.flows)} flows>\n{describe(self)}"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis' falsifying example
        p.text(repr(self))


def derive_ipcache(
    policies: Sequence[Policy],
    pods: Sequence[tuple[str, int, str]],  # (ip, identity, node ip)
    identities: dict[int, LabelSet],
) -> dict[str, IPCacheEntry]:
    """The agent's ipcache (agent/enforcement.py): CIDR identities for CNP CIDR peers
    (added to ``identities``), nodes, pods. /0 is never an entry (world on a miss)."""
    allocator = LocalIdentityAllocator()
    for prefix in sorted(cidr_prefixes(policies)):
        allocator.allocate(prefix)
    identities.update(allocator.identities())
    table = ipcache_model.desired_ipcache(
        [ipcache_model.EndpointIP(ip, identity, node) for ip, identity, node in pods],
        NODES,
        SELF_NODE,
        {p: int(i) for p, i in allocator.prefixes().items()},
    )
    return {p: IPCacheEntry(e.identity, e.tunnel_ip or "0.0.0.0") for p, e in table.items()}


def identity_of(ip: str, ipcache: Mapping[str, IPCacheEntry]) -> int:
    """The datapath's peer identity: longest ipcache match, world on a miss."""
    prefix = longest_prefix(ipcache, ip)
    return WORLD if prefix is None else ipcache[prefix].identity


POD_LABELS = [
    "k8s:app=web",
    "k8s:app=db",
    "k8s:app=client",
    "k8s:tier=front",
    "k8s:tier=back",
    "container:app=web",
]
KEYS = ["app", "k8s:app", "tier", "k8s:tier", NS_KEY, "reserved:world", "reserved:host"]
VALUES = ["web", "db", "client", "front", "back", "ns1", "ns2"]
OPERATORS: list[Operator] = ["In", "NotIn", "Exists", "DoesNotExist"]
PREFIXES = [
    "0.0.0.0/0",
    "10.42.0.0/16",
    "10.42.1.0/24",
    "10.42.2.0/24",
    "10.42.2.10/32",
    "10.42.1.11/32",
    "198.51.100.0/24",
    "198.51.100.0/25",
    "198.51.100.128/25",
    "198.51.100.192/26",
    "198.51.100.200/32",
    "203.0.113.0/24",
]
NAMED_ENTRIES: dict[str, list[frozenset[tuple[str, int]]]] = {
    "http": [frozenset({("TCP", 80)}), frozenset({("TCP", 8080)})],
    "dns": [frozenset({("UDP", 53), ("TCP", 53)}), frozenset({("UDP", 53)})],
    "sig": [frozenset({("SCTP", 5000)})],
}
PORT_NAMES = [*NAMED_ENTRIES, "missing"]
PORTS = [1, 53, 80, 443, 1024, 5000, 8000, 8080, 65535]
FLOWS_PER_SCENARIO = 100
FIXED_FLOW_PORTS = [1, 53, 80, 81, 443, 5000, 8080, 9090, 65535]


@st.composite
def named_ports(draw: st.DrawFn) -> NamedPorts:
    names = draw(st.lists(st.sampled_from(list(NAMED_ENTRIES)), unique=True, max_size=2))
    return {name: draw(st.sampled_from(NAMED_ENTRIES[name])) for name in names}


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    op = draw(st.sampled_from(OPERATORS))
    values = (
        draw(st.frozensets(st.sampled_from(VALUES), min_size=1, max_size=2))
        if op in ("In", "NotIn")
        else frozenset()
    )
    return Requirement(draw(st.sampled_from(KEYS)), op, values)


@st.composite
def selectors(draw: st.DrawFn, namespaced: bool) -> Selector:
    """``namespaced``: a NetworkPolicy pod/namespace selector pair (the namespace is
    always constrained); otherwise a free CNP endpoint selector."""
    reqs = list(draw(st.lists(requirements(), max_size=1 if namespaced else 2)))
    if namespaced:
        ns = draw(st.sampled_from(["ns1", "ns1", "ns2"]))
        key = f"k8s:{NS_KEY}" if draw(st.booleans()) else NS_KEY
        reqs.insert(0, Requirement(key, "In", frozenset({ns})))
    return Selector(tuple(reqs))


@st.composite
def subjects(draw: st.DrawFn, cnp: bool) -> Selector:
    """The endpoints a policy applies to: often all of its namespace (or all)."""
    if draw(st.booleans()):
        return Selector() if cnp else Selector((Requirement(NS_KEY, "In", frozenset({"ns1"})),))
    return draw(selectors(not cnp))


@st.composite
def cidr_peers(draw: st.DrawFn, match_pods: bool) -> CIDRPeer:
    cidr = draw(st.sampled_from(PREFIXES))
    outer = ipaddress.IPv4Network(cidr)
    inside = [p for p in PREFIXES if p != cidr and ipaddress.IPv4Network(p).subnet_of(outer)]
    excepts: list[str] = []
    with_excepts: int = draw(st.integers(0, 2))
    if inside and with_excepts:
        excepts = draw(st.lists(st.sampled_from(inside), unique=True, min_size=1, max_size=2))
    return CIDRPeer(cidr, tuple(excepts), match_pods)


@st.composite
def port_protocols(draw: st.DrawFn, cnp: bool) -> PortProtocol:
    protocols: list[L4Protocol] = ["TCP", "UDP", "SCTP", "ANY"] if cnp else ["TCP", "UDP", "SCTP"]
    protocol = draw(st.sampled_from(protocols))
    if draw(st.integers(0, 5)) == 0:
        return PortProtocol(name=draw(st.sampled_from(PORT_NAMES)), protocol=protocol)
    port = draw(st.sampled_from([0, *PORTS]) | st.integers(1, 65535))
    if not port:
        return PortProtocol(0, 0, protocol)
    ends = [0, 0, port + 1, port + 100, 1023, 9090, 65535]
    end = draw(st.sampled_from(ends) | st.integers(port, 65535))
    return PortProtocol(port, end if port < end <= 65535 else 0, protocol)


@st.composite
def peers(draw: st.DrawFn, cnp: bool) -> Peers:
    kinds = ["any", "selectors", "cidrs"] + (["entities", "cidrs-cnp", "mixed"] if cnp else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "any":
        return Peers(any_peer=True)
    if kind == "selectors":
        return Peers(selectors=tuple(draw(st.lists(selectors(not cnp), min_size=1, max_size=2))))
    if kind == "cidrs":  # NetworkPolicy ipBlock: by address, pods included
        return Peers(cidrs=tuple(draw(st.lists(cidr_peers(True), min_size=1, max_size=2))))
    if kind == "cidrs-cnp":  # CNP toCIDR/toCIDRSet: by CIDR identity
        return Peers(cidrs=tuple(draw(st.lists(cidr_peers(False), min_size=1, max_size=2))))
    if kind == "entities":
        return Peers(
            entities=tuple(draw(st.lists(st.sampled_from(ENTITIES), min_size=1, max_size=2)))
        )
    return Peers(
        selectors=tuple(draw(st.lists(selectors(False), max_size=1))),
        entities=tuple(draw(st.lists(st.sampled_from(ENTITIES), max_size=1))),
        cidrs=tuple(draw(st.lists(cidr_peers(draw(st.booleans())), max_size=1))),
    )


@st.composite
def policies(draw: st.DrawFn, n: int) -> Policy:
    cnp = draw(st.booleans())
    rules: list[Rule] = []
    counters: dict[tuple[str, str], int] = {}
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4]))):
        direction: Direction = draw(st.sampled_from(["ingress", "egress"]))
        action: Action = "deny" if cnp and draw(st.integers(0, 2)) == 0 else "allow"
        index = counters.get((direction, action), 0)
        counters[(direction, action)] = index + 1
        ports = (
            ()
            if draw(st.integers(0, 3)) == 0
            else tuple(draw(st.lists(port_protocols(cnp), min_size=1, max_size=2)))
        )
        rules.append(Rule(direction, action, draw(peers(cnp)), ports, index=index))
    dirs = {r.direction for r in rules}
    kind: PolicyKind
    if cnp:
        subject = draw(subjects(True))
        deny_in = "ingress" in dirs if draw(st.integers(0, 3)) else draw(st.booleans())
        deny_out = "egress" in dirs if draw(st.integers(0, 3)) else draw(st.booleans())
        kind = "CiliumNetworkPolicy"
    else:  # policyTypes: Ingress by default, Egress when asked or when egress rules exist
        subject = draw(subjects(False))
        deny_in = draw(st.integers(0, 3)) > 0
        deny_out = "egress" in dirs or draw(st.booleans())
        kind = "NetworkPolicy"
    return Policy(kind, "ns1", f"p{n}", subject, tuple(rules), deny_in, deny_out)


def flow_ports(pols: Sequence[Policy]) -> list[int]:
    """Boundaries of every numeric port range in the policies, and some fixed ports."""
    out = set(FIXED_FLOW_PORTS)
    for p in pols:
        for r in p.rules:
            for pp in r.ports:
                if pp.port:
                    end = max(pp.port, pp.end_port)
                    out.update({pp.port - 1, pp.port, pp.port + 1, end - 1, end, end + 1})
    return sorted(x for x in out if 1 <= x <= 65535)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    identities: dict[int, LabelSet] = {n: reserved_labels(name) for name, n in RESERVED.items()}
    named: dict[int, NamedPorts] = {}
    pod_ids = list(range(256, 256 + draw(st.integers(1, 4))))
    for ident in pod_ids:
        ns = draw(st.sampled_from(["ns1", "ns1", "ns2"]))
        extra = draw(st.frozensets(st.sampled_from(POD_LABELS), max_size=3))
        identities[ident] = labels(f"{NS_KEY}={ns}", *extra)
        named[ident] = draw(named_ports())
    mode: EnforcementMode = draw(
        st.sampled_from(["default", "default", "default", "always", "never"])
    )
    audit = draw(st.integers(0, 4)) == 0
    pols = tuple(draw(policies(n)) for n in range(draw(st.integers(1, 4))))
    local_ids = draw(st.lists(st.sampled_from(pod_ids), min_size=1, max_size=3))
    remote_ids = draw(st.lists(st.sampled_from(pod_ids), max_size=3))
    local_ips = [f"10.42.1.{11 + i}" for i in range(len(local_ids))]
    remote_ips = [f"10.42.2.{10 + i}" for i in range(len(remote_ids))]
    pods = [(ip, i, "172.18.0.2") for ip, i in zip(local_ips, local_ids, strict=True)] + [
        (ip, i, "172.18.0.3") for ip, i in zip(remote_ips, remote_ids, strict=True)
    ]
    ipcache = derive_ipcache(pols, pods, identities)
    ctx = PolicyContext(identities, named, mode, audit)
    locals_ = tuple(
        LocalEndpoint(n + 1, ident, identities[ident], ip, named[ident])
        for n, (ip, ident) in enumerate(zip(local_ips, local_ids, strict=True))
    )
    others = [*zip(remote_ips, remote_ids, strict=True)]
    others += [(ip, identity_of(ip, ipcache)) for ip in (HOST_IP, REMOTE_NODE_IP, *WORLD_IPS)]
    remotes = tuple(RemotePeer(ident, identities[ident], ip) for ip, ident in others)
    # Flows come from a seeded generator, not from separate draws: the shrinker then
    # works on the policies and identities, and the report names the first bad flow.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    n_peers = len(locals_) + len(remotes)
    ports = flow_ports(pols)
    flows: list[Flow] = []
    for _ in range(FLOWS_PER_SCENARIO):
        local = rng.randrange(len(locals_))
        peer = rng.randrange(n_peers - 1)
        peer += peer >= local  # never the endpoint itself
        proto = rng.choice(["TCP", "TCP", "UDP", "SCTP", "ICMP", "GRE"])
        port = 0 if proto in ("ICMP", "GRE") else rng.choice(ports)
        flows.append(Flow(rng.choice(["ingress", "egress"]), local, peer, proto, port))
    return Scenario(ctx, locals_, remotes, pols, ipcache, tuple(flows))


# ---- the environment ---------------------------------------------------------------------


@dataclass
class Kernel:
    netns: str
    dp: Datapath
    reader: EventReader
    ifindexes: tuple[int, ...]  # one per local endpoint slot

    def reset(self) -> KernelDatapath:
        """Every map empty, no pending events; a writer whose mirror is the empty maps."""
        dp = self.dp
        for m in (dp.lxc, dp.ipcache, dp.policy, dp.policy_cidr, dp.ports, dp.ct):
            m.clear()
        dp.metrics.reset()
        self.reader.consume()
        return KernelDatapath(dp)

    def install(self, sc: Scenario) -> dict[int, EndpointPolicy]:
        """resolve → MapState → the real maps, lxc entries and ipcache."""
        writer = self.reset()
        cache = SelectorCache(sc.ctx.identities)
        resolved = {ep.id: resolve(ep.ref(), sc.policies, sc.ctx, cache) for ep in sc.locals}
        state = mapstate.build(resolved.values())
        writer.sync_policy(state)
        for slot, ep in enumerate(sc.locals):
            entry = LxcEntry(
                ep.id, ep.identity, ep.ip, state.flags.get(ep.id, 0), f"02:00:00:00:01:{slot:02x}"
            )
            writer.set_endpoint(self.ifindexes[slot], entry)
        writer.sync_ipcache(sc.ipcache)
        return resolved

    def run(
        self, direction: Direction, slot: int, frame: bytes
    ) -> tuple[int, list[ev.DatapathEvent]]:
        """A new connection through one program: CT flushed first, events read after."""
        self.dp.ct.flush()
        program = "from_container" if direction == "egress" else "to_container"
        with entered(self.netns):
            result = bpfsys.prog_test_run(
                self.dp.program_fd(program), frame, ctx=skb_ctx(self.ifindexes[slot])
            )
        return result.retval, self.reader.consume()


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with private_datapath("axt-po", ("e0", "e1"), ("e2", "e3")) as p:
        yield Kernel(p.netns, p.dp, p.reader, tuple(p.ifindex[f"e{i}"] for i in range(4)))
    assert not p.pin_dir.exists()


# ---- checking one side of one flow -------------------------------------------------------

EXPECTED_EVENT = {"ALLOWED": "FORWARDED", "DENIED": "DROPPED", "AUDIT": "AUDIT"}
EXPECTED_REASON = {"denied": 181, "default-deny": 133}


def describe_policy(p: Policy) -> str:
    lines = [
        f"  {p.ref} subject={p.subject} default_deny(in={p.default_deny_ingress}, "
        f"out={p.default_deny_egress})"
    ]
    lines += [
        f"    {r.direction}/{r.action}[{r.index}] peers={r.peers} ports={r.ports}" for r in p.rules
    ]
    return "\n".join(lines)


def describe(sc: Scenario) -> str:
    out = [f"mode={sc.ctx.mode} audit={sc.ctx.audit}", "identities:"]
    out += [
        f"  {i}: {sorted(str(lb) for lb in ls)}"
        for i, ls in sorted(sc.ctx.identities.items())
        if i >= 256 or i == WORLD
    ]
    out += [f"named ports: {dict(sc.ctx.named_ports)}", "local endpoints:"]
    out += [f"  ep{ep.id} {ep.ip} identity {ep.identity}" for ep in sc.locals]
    out += ["remote peers:"] + [f"  {r.ip} identity {r.identity}" for r in sc.remotes]
    out += ["ipcache:"] + [f"  {p} -> {e.identity}" for p, e in sorted(sc.ipcache.items())]
    out += ["policies:"] + [describe_policy(p) for p in sc.policies]
    return "\n".join(out)


def check_side(
    kernel: Kernel,
    sc: Scenario,
    resolved: Mapping[int, EndpointPolicy],
    direction: Direction,
    slot: int,
    peer: Peer,
    proto: str,
    port: int,
    sport: int = 40000,
) -> str | None:
    """Run one side of one flow; None when kernel and reference agree, else a report."""
    ep = sc.locals[slot]
    src, dst = (ep, peer) if direction == "egress" else (peer, ep)
    decision = evaluate(src, dst, proto, port, sc.policies, sc.ctx)
    side: SideDecision | None = decision.egress if direction == "egress" else decision.ingress
    assert side is not None
    retval, events = kernel.run(direction, slot, packet(src.ip, dst.ip, proto, sport, port))
    want_ret = TC_ACT_SHOT if side.verdict == "DENIED" else TC_ACT_OK
    verdicts = [
        (e.verdict_name, e.reason, e.ep_id, e.direction)
        for e in events
        if e.type == ev.EVENT_POLICY_VERDICT
    ]
    want_event = [
        (EXPECTED_EVENT[side.verdict], EXPECTED_REASON.get(side.outcome, 0), ep.id, direction)
    ]
    if retval == want_ret and verdicts == want_event:
        return None
    sim = simulate(
        resolved[src.id] if direction == "egress" and isinstance(src, LocalEndpoint) else None,
        resolved[dst.id] if direction == "ingress" and isinstance(dst, LocalEndpoint) else None,
        src_identity=src.identity,
        src_ip=src.ip,
        dst_identity=dst.identity,
        dst_ip=dst.ip,
        proto=proto,
        port=port,
    )
    sim_side = sim.egress if direction == "egress" else sim.ingress
    mine = resolved[ep.id].egress if direction == "egress" else resolved[ep.id].ingress
    return "\n".join(
        [
            f"FLOW {proto} {src.ip}(id {src.identity}) -> {dst.ip}(id {dst.identity}):{port}, "
            f"checked at ep{ep.id} {direction}",
            f"  kernel: retval {retval}, POLICY_VERDICT {verdicts}",
            f"  reference: {side.verdict} ({side.outcome}), want retval {want_ret}, "
            f"event {want_event}; allowed_by={[str(r) for r in side.allowed_by]} "
            f"denied_by={[str(r) for r in side.denied_by]}",
            f"  mapsim over resolve(): {sim_side}",
            f"  resolve() {direction} of ep{ep.id}: {mine}",
            describe(sc),
        ]
    )


# ---- the property ------------------------------------------------------------------------


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(sc=scenarios())
def test_kernel_verdicts_agree_with_reference(kernel: Kernel, sc: Scenario) -> None:
    resolved = kernel.install(sc)
    peers = sc.peers()
    for n, flow in enumerate(sc.flows):
        problem = check_side(
            kernel,
            sc,
            resolved,
            flow.direction,
            flow.local,
            peers[flow.peer],
            flow.proto,
            flow.port,
            sport=40000 + n,
        )
        if problem is not None:
            raise AssertionError(problem)


# ---- hand-written cases (cilium-semantics.md §2.8, §2.7) ---------------------------------

CLIENT_ID, SERVER_ID, OTHER_ID = 300, 301, 302
IDS: dict[int, LabelSet] = {
    **{n: reserved_labels(name) for name, n in RESERVED.items()},
    CLIENT_ID: labels("k8s:app=client", f"{NS_KEY}=demo"),
    SERVER_ID: labels("k8s:app=server", f"{NS_KEY}=demo"),
    OTHER_ID: labels("k8s:app=other", f"{NS_KEY}=demo"),
}
# peer names of the hand-written cases
CLIENT, REMOTE, WORLD_IN, WORLD_EXCEPT = "client", "remote", "world", "world-except"


def app(name: str) -> Selector:
    return Selector(
        (
            Requirement("k8s:app", "In", frozenset({name})),
            Requirement(NS_KEY, "In", frozenset({"demo"})),
        )
    )


def cnp(name: str, *rules: Rule, subject: str = "server") -> Policy:
    dirs = {r.direction for r in rules}
    return Policy(
        "CiliumNetworkPolicy",
        "demo",
        name,
        app(subject),
        rules,
        "ingress" in dirs,
        "egress" in dirs,
    )


def np(name: str, *rules: Rule) -> Policy:
    return Policy("NetworkPolicy", "demo", name, app("server"), rules, True, False)


def tcp_port(port: int, end: int = 0, protocol: L4Protocol = "TCP") -> PortProtocol:
    return PortProtocol(port, end, protocol)


def fixed_scenario(pols: Sequence[Policy], mode: EnforcementMode, audit: bool) -> Scenario:
    identities = dict(IDS)
    pods = [
        ("10.42.1.11", SERVER_ID, "172.18.0.2"),
        ("10.42.1.12", CLIENT_ID, "172.18.0.2"),
        ("10.42.2.10", OTHER_ID, "172.18.0.3"),
    ]
    ipcache = derive_ipcache(pols, pods, identities)
    server = LocalEndpoint(1, SERVER_ID, IDS[SERVER_ID], "10.42.1.11")
    client = LocalEndpoint(2, CLIENT_ID, IDS[CLIENT_ID], "10.42.1.12")
    remotes = tuple(
        RemotePeer(identity_of(ip, ipcache), identities[identity_of(ip, ipcache)], ip)
        for ip in ("10.42.2.10", "198.51.100.5", "198.51.100.200")
    )
    return Scenario(
        PolicyContext(identities, {}, mode, audit), (server, client), remotes, tuple(pols), ipcache
    )


# (side at the server, peer, proto, port, reference verdict, reference outcome)
Check = tuple[Direction, str, str, int, str, str]

L3_ALLOW_L4_DENY = [
    cnp(
        "l3-allow-l4-deny",
        Rule("ingress", "allow", Peers(selectors=(app("client"),))),
        Rule("ingress", "deny", Peers(any_peer=True), (tcp_port(80),)),
    )
]
DENY_ANY_VS_ALLOW_ONE = [
    cnp(
        "allow-client", Rule("ingress", "allow", Peers(selectors=(app("client"),)), (tcp_port(0),))
    ),
    cnp(
        "deny-all-443",
        Rule("ingress", "deny", Peers(entities=("all",)), (tcp_port(443, protocol="ANY"),)),
    ),
]
IPBLOCK_EXCEPT = [
    np(
        "ipblock",
        Rule(
            "ingress",
            "allow",
            Peers(
                cidrs=(
                    CIDRPeer("198.51.100.0/24", ("198.51.100.128/25",), True),
                    CIDRPeer("10.42.2.0/24", (), True),
                )
            ),
            (tcp_port(443),),
        ),
    ),
]
PORT_RANGE = [np("range", Rule("ingress", "allow", Peers(any_peer=True), (tcp_port(8000, 8100),)))]
ANY_PROTOCOL = [
    cnp(
        "any-proto",
        Rule("ingress", "allow", Peers(entities=("all",)), (tcp_port(5000, protocol="ANY"),)),
    ),
]
AUDITED = [
    cnp(
        "audited",
        Rule("ingress", "deny", Peers(selectors=(app("other"),))),
        Rule("ingress", "allow", Peers(selectors=(app("client"),)), (tcp_port(80),)),
    )
]
NEVER = [
    cnp(
        "never",
        Rule("ingress", "deny", Peers(any_peer=True)),
        Rule("egress", "deny", Peers(any_peer=True)),
    ),
]

CASES: list[tuple[str, list[Policy], EnforcementMode, bool, list[Check]]] = [
    (
        "l3-allow-l4-deny-80",
        L3_ALLOW_L4_DENY,
        "default",
        False,
        [
            ("ingress", CLIENT, "TCP", 80, "DENIED", "denied"),
            ("ingress", CLIENT, "TCP", 81, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "ICMP", 0, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "UDP", 80, "ALLOWED", "allowed"),
            ("ingress", WORLD_IN, "TCP", 81, "DENIED", "default-deny"),
            ("ingress", WORLD_IN, "TCP", 80, "DENIED", "denied"),
        ],
    ),
    (
        "deny-any-identity-beats-specific-allow",
        DENY_ANY_VS_ALLOW_ONE,
        "default",
        False,
        [
            ("ingress", CLIENT, "TCP", 443, "DENIED", "denied"),
            ("ingress", CLIENT, "UDP", 443, "DENIED", "denied"),
            ("ingress", CLIENT, "SCTP", 443, "DENIED", "denied"),
            ("ingress", CLIENT, "TCP", 444, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "UDP", 444, "DENIED", "default-deny"),
            ("ingress", REMOTE, "TCP", 80, "DENIED", "default-deny"),
        ],
    ),
    (
        "ipblock-except-carve-out",
        IPBLOCK_EXCEPT,
        "default",
        False,
        [
            ("ingress", WORLD_IN, "TCP", 443, "ALLOWED", "allowed"),
            ("ingress", WORLD_EXCEPT, "TCP", 443, "DENIED", "default-deny"),
            ("ingress", WORLD_IN, "TCP", 80, "DENIED", "default-deny"),
            ("ingress", REMOTE, "TCP", 443, "ALLOWED", "allowed"),  # an ipBlock matches pods
            ("ingress", CLIENT, "TCP", 443, "DENIED", "default-deny"),
        ],
    ),
    (
        "port-range-boundaries",
        PORT_RANGE,
        "default",
        False,
        [
            ("ingress", CLIENT, "TCP", 7999, "DENIED", "default-deny"),
            ("ingress", CLIENT, "TCP", 8000, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "TCP", 8063, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "TCP", 8064, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "TCP", 8100, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "TCP", 8101, "DENIED", "default-deny"),
            ("ingress", CLIENT, "UDP", 8050, "DENIED", "default-deny"),
        ],
    ),
    (
        "any-protocol-covers-sctp",
        ANY_PROTOCOL,
        "default",
        False,
        [
            ("ingress", WORLD_IN, "SCTP", 5000, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "UDP", 5000, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "TCP", 5000, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "SCTP", 5001, "DENIED", "default-deny"),
            ("ingress", CLIENT, "ICMP", 0, "DENIED", "default-deny"),
        ],
    ),
    (
        "audit-forwards-would-be-drops",
        AUDITED,
        "default",
        True,
        [
            ("ingress", CLIENT, "TCP", 80, "ALLOWED", "allowed"),
            ("ingress", CLIENT, "TCP", 81, "AUDIT", "default-deny"),
            ("ingress", REMOTE, "TCP", 80, "AUDIT", "denied"),
            ("egress", CLIENT, "TCP", 80, "ALLOWED", "not-enforced"),
        ],
    ),
    (
        "mode-never-ignores-policy",
        NEVER,
        "never",
        False,
        [
            ("ingress", CLIENT, "TCP", 80, "ALLOWED", "not-enforced"),
            ("ingress", WORLD_IN, "ICMP", 0, "ALLOWED", "not-enforced"),
            ("egress", CLIENT, "UDP", 53, "ALLOWED", "not-enforced"),
        ],
    ),
    (
        "mode-always-without-policy",
        [],
        "always",
        False,
        [
            ("ingress", CLIENT, "TCP", 80, "DENIED", "default-deny"),
            ("ingress", WORLD_IN, "ICMP", 0, "DENIED", "default-deny"),
            ("egress", CLIENT, "UDP", 53, "DENIED", "default-deny"),
            ("egress", WORLD_IN, "TCP", 443, "DENIED", "default-deny"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("pols", "mode", "audit", "checks"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_semantics_examples(
    kernel: Kernel, pols: list[Policy], mode: EnforcementMode, audit: bool, checks: list[Check]
) -> None:
    sc = fixed_scenario(pols, mode, audit)
    resolved = kernel.install(sc)
    server, client = sc.locals
    by_name: dict[str, Peer] = {
        CLIENT: client,
        REMOTE: sc.remotes[0],
        WORLD_IN: sc.remotes[1],
        WORLD_EXCEPT: sc.remotes[2],
    }
    for n, (direction, name, proto, port, verdict, outcome) in enumerate(checks):
        peer = by_name[name]
        src, dst = (server, peer) if direction == "egress" else (peer, server)
        side = evaluate(src, dst, proto, port, sc.policies, sc.ctx)
        ref = side.egress if direction == "egress" else side.ingress
        assert ref is not None and (ref.verdict, ref.outcome) == (verdict, outcome), (
            f"reference disagrees with the hand-written expectation for {name} {proto}/{port}: "
            f"{ref}"
        )
        problem = check_side(kernel, sc, resolved, direction, 0, peer, proto, port, sport=41000 + n)
        assert problem is None, problem
