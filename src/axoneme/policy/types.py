"""The policy model every part of ``policy/`` shares, and the desired state it resolves to.

Three layers, all frozen values:

1. ``Policy`` / ``Rule`` / ``Peers`` / ``PortProtocol`` / ``Selector``: what the
   parser (``policy.parse``) makes of a NetworkPolicy, CiliumNetworkPolicy or
   CiliumClusterwideNetworkPolicy. Namespace defaulting is already applied:
   selectors carry their namespace requirement explicitly, so nothing
   downstream needs to know which kind a rule came from, except
   ``CIDRPeer.match_pods`` (below).
2. The resolver's input about the cluster: identities and their labels, the
   endpoints on this node, named ports per identity (``PolicyContext``).
3. ``EndpointPolicy``: the desired datapath state of one endpoint, which the
   agent diffs into the BPF maps (see docs/datapath.md for the layout).

Semantics (cilium-semantics.md §2), in short: an endpoint is default-allow in
a direction until a policy that selects it has ``default_deny`` in that
direction; allows are a union; a deny matching a packet wins over every allow;
a rule's peers and ports are ANDed; separate rules and policies are ORed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from axoneme.labels.model import LabelSet

Direction = Literal["ingress", "egress"]
Action = Literal["allow", "deny"]
L4Protocol = Literal["TCP", "UDP", "SCTP", "ANY"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
PolicyKind = Literal["NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"]
EnforcementMode = Literal["default", "always", "never"]

PROTO_NUMBERS: dict[str, int] = {"TCP": 6, "UDP": 17, "SCTP": 132}

ENTITIES = (
    "host",
    "remote-node",
    "world",
    "cluster",
    "all",
    "kube-apiserver",
    "health",
    "init",
    "unmanaged",
    "ingress",
    "none",
    "world-ipv4",
    "world-ipv6",
)


@dataclass(frozen=True)
class Requirement:
    """One label requirement. ``key`` may carry a source (``k8s:app``); a bare key
    (``app``) matches that key from any source. matchLabels ``{k: v}`` becomes
    ``Requirement(k, "In", frozenset({v}))``."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Selector:
    """A label selector over identity labels; all requirements must hold.
    An empty selector matches every identity (the resolver applies no other limit)."""

    requirements: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class PortProtocol:
    """``port`` 0 means every port; ``end_port`` 0 means just ``port``. A named port
    has ``name`` set and ``port`` 0; the resolver turns it into numbers (ingress:
    the selected endpoint's container ports; egress: the peer identity's)."""

    port: int = 0
    end_port: int = 0
    protocol: L4Protocol = "ANY"
    name: str = ""


@dataclass(frozen=True)
class CIDRPeer:
    """A prefix minus exceptions. ``match_pods`` is True for a Kubernetes
    NetworkPolicy ``ipBlock``: it then matches any peer address inside it, pod
    IPs included (enforced by prefix, the upstream conformance behaviour). For
    CiliumNetworkPolicy ``toCIDR``/``toCIDRSet`` it is False: Cilium semantics,
    the prefix matches only peers whose identity is world or a CIDR identity."""

    cidr: str
    excepts: tuple[str, ...] = ()
    match_pods: bool = False


@dataclass(frozen=True)
class ServicePeer:
    """A ``toServices`` entry: the Service ``name`` (k8sService) or the Services whose
    labels match ``selector`` (k8sServiceSelector), in ``namespace`` ("" = any).
    It matches nothing by itself: :func:`axoneme.policy.services.expand` turns it
    into the service's backends (its pod selector, or its EndpointSlice addresses)
    from the Services the agent currently knows."""

    name: str = ""
    namespace: str = ""
    selector: Selector | None = None


@dataclass(frozen=True)
class Peers:
    """The union of peer kinds of one rule. ``any_peer`` is a rule with no L3
    constraint (NetworkPolicy rule without from/to, or a CNP entry with only
    toPorts): every identity and every address, world included."""

    any_peer: bool = False
    selectors: tuple[Selector, ...] = ()
    entities: tuple[str, ...] = ()
    cidrs: tuple[CIDRPeer, ...] = ()
    services: tuple[ServicePeer, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One ingress/egress(/Deny) entry: peers x ports. Empty ``ports`` = all
    protocols and ports (ICMP included). ``not_enforced`` names accepted parts
    the datapath does not enforce yet (``toPorts[0].rules.http``, ``toFQDNs``):
    the L3/L4 part of the rule is still enforced."""

    direction: Direction
    action: Action
    peers: Peers
    ports: tuple[PortProtocol, ...] = ()
    not_enforced: tuple[str, ...] = ()
    index: int = 0  # position among the policy's rules of this direction+action, for trace


@dataclass(frozen=True)
class Policy:
    """One rule set of one resource. A CNP with ``specs`` gives several Policy
    values with the same name and increasing ``spec_index``."""

    kind: PolicyKind
    namespace: str  # "" for cluster-wide
    name: str
    subject: Selector  # endpointSelector/podSelector, namespace folded in
    rules: tuple[Rule, ...]
    default_deny_ingress: bool
    default_deny_egress: bool
    spec_index: int = 0
    uid: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"


# ---- resolver input ---------------------------------------------------------


@dataclass(frozen=True)
class EndpointRef:
    """What the resolver needs to know about one local endpoint."""

    id: int
    identity: int
    labels: LabelSet
    # name → {(protocol, port)} from the pod's containers[].ports
    named_ports: Mapping[str, frozenset[tuple[str, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyContext:
    identities: Mapping[int, LabelSet]  # every known identity (reserved, cluster, CIDR)
    # identity → name → {(protocol, port)}: named ports of the pods behind each identity
    named_ports: Mapping[int, Mapping[str, frozenset[tuple[str, int]]]]
    mode: EnforcementMode = "default"
    audit: bool = False


# ---- resolver output: desired datapath state ---------------------------------
#
# The protocol/port space is one 24-bit integer line: (protocol << 16) | port.
# "All protocols and ports" is [0, 0xFFFFFF]; "TCP, every port" is
# [6 << 16, (6 << 16) | 0xFFFF]. An interval list is sorted and disjoint.

Interval = tuple[int, int]  # inclusive bounds on the protocol/port line
ANY_IDENTITY = 0


@dataclass(frozen=True)
class PortVerdicts:
    """Allowed and denied parts of the protocol/port line for one peer key.
    ``allow`` and ``deny`` are disjoint (deny already subtracted from allow)."""

    allow: tuple[Interval, ...] = ()
    deny: tuple[Interval, ...] = ()


@dataclass(frozen=True)
class DirectionPolicy:
    """The desired state of one endpoint in one direction.

    ``enforced``: default-deny (something selects it with rules this way, or
    mode=always). ``by_identity``: peer identity (0 = any identity) → verdicts;
    the datapath checks the peer's identity and ANY, and a deny in either wins.
    ``by_prefix``: peer prefixes from NetworkPolicy ipBlocks, refined so that the
    longest matching prefix carries the combined verdicts of every ipBlock rule
    covering that address (exceptions are carved out as their own prefixes).
    Deny in any lookup wins; else allow in any; else the default."""

    enforced: bool = False
    audit: bool = False
    by_identity: Mapping[int, PortVerdicts] = field(default_factory=dict)
    by_prefix: Mapping[str, PortVerdicts] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointPolicy:
    endpoint_id: int
    ingress: DirectionPolicy
    egress: DirectionPolicy
    revision: int = 0
    selected_by: tuple[str, ...] = ()  # refs of the policies selecting the endpoint
