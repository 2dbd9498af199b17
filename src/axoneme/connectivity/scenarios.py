"""The connectivity test's scenarios, as data: workloads, policies, probes, expectations.

Pure: nothing here touches the lab. The runner (:mod:`axoneme.connectivity.runner`)
deploys :data:`WORKLOADS` in :data:`NAMESPACE`, then for each scenario applies its
policies, runs its probes and compares every outcome with the expected set.

Endpoints in probes are symbolic, resolved by the runner:

- a workload name (``client``, ``client2``, ``echo-same-node``, ``echo-other-node``);
- :data:`SAME_NODE` / :data:`OTHER_NODE`: the node running the clients and
  ``echo-same-node``, and the node running ``echo-other-node``;
- :data:`WORLD` as a source: the lab's host outside the cluster; an IPv4
  address as a destination (the world's addresses are :data:`WORLD_A`/:data:`WORLD_B`);
- ``service:NAME`` as a destination: the ClusterIP of :data:`SERVICES`' Service
  ``NAME`` (it selects the workload of the same name), read back after deploying.

Outcomes are the probe engine's: ``reachable``, ``refused`` (something answered
no: the packet got through) and ``timeout`` (silence: dropped). Nodes run no
listener on the probed port, so "got through to a node" is ``refused`` or
``reachable`` (:data:`THROUGH`).

Adding a scenario is one :class:`Scenario` in :data:`SCENARIOS`. A scenario that
needs a datapath feature the lab may not run (NodePort) names it in ``requires``;
the runner skips it, with the feature's reason from :data:`FEATURE_MISSING`, unless
every node's agent reports the feature on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from axoneme.lab.topology import WORLD_ADDRESSES
from axoneme.probe.run import Outcome
from axoneme.probe.spec import ProbeSpec, Proto

NAMESPACE = "axoneme-connectivity"
SAME_NODE = "node:same"
OTHER_NODE = "node:other"
WORLD = "world"
SERVICE_PREFIX = "service:"
WORLD_A, WORLD_B = WORLD_ADDRESSES
ECHO_PORT = 8080
HOST_PORT = 80  # nothing listens there on a node: an answer is "refused"
WORLD_TCP, WORLD_UDP = 80, 53  # the world's workload listens on these
ECHO_NODEPORT = 31080  # echo-same-node's Service's nodePort

REACHABLE: frozenset[Outcome] = frozenset({"reachable"})
DROPPED: frozenset[Outcome] = frozenset({"timeout"})
THROUGH: frozenset[Outcome] = frozenset({"reachable", "refused"})

_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")

NODEPORT_MISSING = (
    "the agents do not serve NodePort on the nodes' addresses (status kubeProxyReplacement"
    " nodePort is not Enabled)"
)
NODEPORT = "nodeport"
FEATURE_MISSING = {NODEPORT: NODEPORT_MISSING}


@dataclass(frozen=True)
class Workload:
    """A pod the runner deploys; ``node`` is ``SAME_NODE`` or ``OTHER_NODE``."""

    name: str
    node: str
    labels: Mapping[str, str]
    ports: tuple[tuple[int, Proto], ...] = ()


WORKLOADS: tuple[Workload, ...] = (
    Workload("client", SAME_NODE, {"kind": "client", "name": "client"}),
    Workload("client2", SAME_NODE, {"kind": "client", "name": "client2", "other": "client"}),
    Workload(
        "echo-same-node",
        SAME_NODE,
        {"kind": "echo", "name": "echo-same-node"},
        ((ECHO_PORT, "TCP"), (ECHO_PORT, "UDP")),
    ),
    Workload(
        "echo-other-node",
        OTHER_NODE,
        {"kind": "echo", "name": "echo-other-node"},
        ((ECHO_PORT, "TCP"), (ECHO_PORT, "UDP")),
    ),
)


@dataclass(frozen=True)
class Probe:
    """One probe and the outcomes that count as right."""

    src: str
    dst: str
    port: int
    proto: Proto
    want: frozenset[Outcome]

    def describe(self, nodes: Mapping[str, str] | None = None) -> str:
        """``client -> echo-other-node:8080/TCP``; with ``nodes``, node roles by name."""

        def name(ref: str) -> str:
            return f"node:{nodes[ref]}" if nodes and ref in nodes else ref

        return f"{name(self.src)} -> {name(self.dst)}:{self.port}/{self.proto}"


@dataclass(frozen=True)
class Scenario:
    """A named check: apply ``policies``, run ``probes``, each must give one of its ``want``.

    ``skip`` (a reason) makes the scenario appear in the report without running;
    ``requires`` names features (:data:`FEATURE_MISSING`) it runs only with.
    """

    name: str
    probes: tuple[Probe, ...]
    policies: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    skip: str | None = None
    requires: frozenset[str] = frozenset()


def expected(probe: Probe, outcome: Outcome) -> bool:
    return outcome in probe.want


def describe_want(want: Iterable[Outcome]) -> str:
    order = ("reachable", "refused", "timeout")
    return " or ".join(o for o in order if o in set(want))


def mismatches(
    probes: Sequence[Probe],
    outcomes: Sequence[Outcome],
    details: Sequence[str] | None = None,
    nodes: Mapping[str, str] | None = None,
) -> list[str]:
    """One line per probe whose outcome is not expected, e.g.
    ``client -> echo-other-node:8080/TCP: got timeout, want reachable``, followed by
    the probe's detail in parentheses when ``details`` are given (node roles named
    by ``nodes``, as :meth:`Probe.describe`)."""
    if len(probes) != len(outcomes) or (details is not None and len(details) != len(probes)):
        raise ValueError(f"{len(probes)} probes but {len(outcomes)} outcomes")
    notes = [f" ({d})" if d else "" for d in details] if details else [""] * len(probes)
    return [
        f"{p.describe(nodes)}: got {o}, want {describe_want(p.want)}{note}"
        for p, o, note in zip(probes, outcomes, notes, strict=True)
        if not expected(p, o)
    ]


def resolve(ref: str, nodes: Mapping[str, str], services: Mapping[str, str] | None = None) -> str:
    """A symbolic endpoint as ``axoneme probe`` names it, given the lab's node names for
    :data:`SAME_NODE` and :data:`OTHER_NODE` and the Services' ClusterIPs by name."""
    if ref in (SAME_NODE, OTHER_NODE):
        return f"node:{nodes[ref]}"
    if ref.startswith(SERVICE_PREFIX):
        name = ref.removeprefix(SERVICE_PREFIX)
        if not services or name not in services:
            raise ValueError(f"{ref}: no ClusterIP known for Service {NAMESPACE}/{name}")
        return services[name]
    if ref == WORLD or _IPV4.fullmatch(ref):
        return ref
    return f"{NAMESPACE}/{ref}"


def probe_spec(
    probe: Probe, nodes: Mapping[str, str], services: Mapping[str, str] | None = None
) -> ProbeSpec:
    return ProbeSpec(
        resolve(probe.src, nodes), resolve(probe.dst, nodes, services), probe.port, probe.proto
    )


def workload_manifests(nodes: Mapping[str, str]) -> list[dict[str, Any]]:
    """The namespace and one pod per :data:`WORKLOADS` entry, bound to its node."""
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": w.name, "namespace": NAMESPACE, "labels": dict(w.labels)},
            "spec": {
                "nodeName": nodes[w.node],
                "containers": [
                    {
                        "name": "main",
                        "image": "axoneme/workload",
                        "ports": [{"containerPort": p, "protocol": proto} for p, proto in w.ports],
                    }
                ],
            },
        }
        for w in WORKLOADS
    ]
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "axoneme-connectivity"},
        },
    }
    return [namespace, *pods, *service_manifests()]


# One Service per echo workload, selecting it by name, as cilium-cli deploys them;
# echo-same-node's is a NodePort (``ECHO_NODEPORT``), the other a plain ClusterIP.
SERVICES: tuple[tuple[str, int | None], ...] = (
    ("echo-same-node", ECHO_NODEPORT),
    ("echo-other-node", None),
)


def service_manifests() -> list[dict[str, Any]]:
    out = []
    for name, node_port in SERVICES:
        workload = next(w for w in WORKLOADS if w.name == name)
        ports = []
        for port, proto in workload.ports:
            entry: dict[str, Any] = {
                "name": f"echo-{proto.lower()}",
                "port": port,
                "targetPort": port,
                "protocol": proto,
            }
            if node_port is not None and proto == "TCP":
                entry["nodePort"] = node_port
            ports.append(entry)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "type": "NodePort" if node_port is not None else "ClusterIP",
                    "selector": {"name": name},
                    "ports": ports,
                },
            }
        )
    return out


class SelectionError(ValueError):
    """A ``--test`` pattern is not a valid regular expression, or selects nothing."""


def select(scenarios: Sequence[Scenario], patterns: Sequence[str]) -> list[Scenario]:
    """Scenarios whose name matches (``re.search``) any pattern, minus those matching
    a ``!``-prefixed one (as cilium-cli's ``--test``); no positive pattern = all."""
    include: list[re.Pattern[str]] = []
    exclude: list[re.Pattern[str]] = []
    for pattern in patterns:
        negative = pattern.startswith("!")
        text = pattern[1:] if negative else pattern
        try:
            compiled = re.compile(text)
        except re.error as exc:
            raise SelectionError(
                f"--test: {pattern!r} is not a valid regular expression ({exc})"
            ) from None
        (exclude if negative else include).append(compiled)
    chosen = [
        s
        for s in scenarios
        if (not include or any(p.search(s.name) for p in include))
        and not any(p.search(s.name) for p in exclude)
    ]
    if not chosen:
        shown = " ".join(repr(p) for p in patterns)
        raise SelectionError(f"--test: {shown} selects no scenario (see the scenario names)")
    return chosen


# ---- policies -------------------------------------------------------------------------


def _cnp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _knp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _labels(**labels: str) -> dict[str, Any]:
    return {"matchLabels": labels}


ALL: dict[str, Any] = {}
CLIENTS = _labels(kind="client")
ECHOES = _labels(kind="echo")
ECHO_TCP = [{"ports": [{"port": str(ECHO_PORT), "protocol": "TCP"}]}]
KNP_ECHO_TCP = [{"port": ECHO_PORT, "protocol": "TCP"}]
# Everything in 192.0.0.0/3 but the second world prefix: WORLD_A yes, WORLD_B no.
CIDR = "192.0.0.0/3"
CIDR_EXCEPT = "203.0.113.0/24"


def _tcp(src: str, dst: str, want: frozenset[Outcome], port: int = ECHO_PORT) -> Probe:
    return Probe(src, dst, port, "TCP", want)


def _udp(src: str, dst: str, want: frozenset[Outcome], port: int = ECHO_PORT) -> Probe:
    return Probe(src, dst, port, "UDP", want)


def _host(src: str, node: str, want: frozenset[Outcome]) -> Probe:
    return Probe(src, node, HOST_PORT, "TCP", want)


def _world(src: str, addr: str, want: frozenset[Outcome], proto: Proto = "TCP") -> Probe:
    return Probe(src, addr, WORLD_TCP if proto == "TCP" else WORLD_UDP, proto, want)


# ---- the scenarios ----------------------------------------------------------------------

_NO_POLICY = (
    Scenario(
        "pod-to-pod-same-node",
        (
            _tcp("client", "echo-same-node", REACHABLE),
            _udp("client", "echo-same-node", REACHABLE),
            _tcp("client2", "echo-same-node", REACHABLE),
        ),
    ),
    Scenario(
        "pod-to-pod-other-node",
        (
            _tcp("client", "echo-other-node", REACHABLE),
            _udp("client", "echo-other-node", REACHABLE),
            _tcp("client2", "echo-other-node", REACHABLE),
            _tcp("echo-other-node", "echo-same-node", REACHABLE),
        ),
    ),
    Scenario(
        "pod-to-service-clusterip-same-node",
        (
            _tcp("client", SERVICE_PREFIX + "echo-same-node", REACHABLE),
            _udp("client", SERVICE_PREFIX + "echo-same-node", REACHABLE),
            _tcp("client2", SERVICE_PREFIX + "echo-same-node", REACHABLE),
        ),
    ),
    Scenario(
        "pod-to-service-clusterip-other-node",
        (
            _tcp("client", SERVICE_PREFIX + "echo-other-node", REACHABLE),
            _udp("client", SERVICE_PREFIX + "echo-other-node", REACHABLE),
            _tcp("echo-other-node", SERVICE_PREFIX + "echo-same-node", REACHABLE),
        ),
    ),
    Scenario(
        "pod-to-service-nodeport",
        (
            _tcp("client", SAME_NODE, REACHABLE, port=ECHO_NODEPORT),
            _tcp("client", OTHER_NODE, REACHABLE, port=ECHO_NODEPORT),
        ),
        requires=frozenset({NODEPORT}),
    ),
    Scenario(
        "world-to-service-nodeport",
        (
            _tcp(WORLD, SAME_NODE, REACHABLE, port=ECHO_NODEPORT),
            _tcp(WORLD, OTHER_NODE, REACHABLE, port=ECHO_NODEPORT),
        ),
        requires=frozenset({NODEPORT}),
    ),
    Scenario(
        "pod-to-host",
        (
            _host("client", SAME_NODE, THROUGH),
            _host("client", OTHER_NODE, THROUGH),
            _host("echo-other-node", SAME_NODE, THROUGH),
        ),
    ),
    Scenario(
        "host-to-pod",
        (
            _tcp(SAME_NODE, "echo-same-node", REACHABLE),
            _tcp(OTHER_NODE, "echo-same-node", REACHABLE),
            _udp(SAME_NODE, "echo-other-node", REACHABLE),
        ),
    ),
    Scenario(
        "pod-to-world",
        (
            _world("client", WORLD_A, REACHABLE),
            _world("client", WORLD_B, REACHABLE, "UDP"),
            _world("echo-other-node", WORLD_B, REACHABLE),
        ),
    ),
    Scenario(
        "world-to-pod",
        (
            _tcp(WORLD, "echo-same-node", REACHABLE),
            _udp(WORLD, "echo-other-node", REACHABLE),
        ),
    ),
)

_ALLOW_DENY_ALL = (
    Scenario(
        "allow-all",
        (
            _tcp("client", "echo-same-node", REACHABLE),
            _udp("client", "echo-other-node", REACHABLE),
            _world("client", WORLD_A, REACHABLE),
            _host("client", SAME_NODE, THROUGH),
            _tcp(WORLD, "echo-other-node", REACHABLE),
        ),
        (
            _cnp(
                "allow-all",
                {
                    "endpointSelector": ALL,
                    "ingress": [{"fromEntities": ["all"]}],
                    "egress": [{"toEntities": ["all"]}],
                },
            ),
        ),
    ),
    Scenario(
        "all-ingress-deny",
        (
            _tcp("client", "echo-same-node", DROPPED),
            _udp("client", "echo-other-node", DROPPED),
            _tcp(WORLD, "echo-other-node", DROPPED),
            _tcp(OTHER_NODE, "echo-same-node", DROPPED),
            # The node always reaches its own endpoints (allow-localhost).
            _tcp(SAME_NODE, "echo-same-node", REACHABLE),
            # Egress is not selected.
            _world("client", WORLD_A, REACHABLE),
        ),
        (_knp("all-ingress-deny", {"podSelector": ALL, "policyTypes": ["Ingress"]}),),
    ),
    Scenario(
        "all-egress-deny",
        (
            _tcp("client", "echo-same-node", DROPPED),
            _tcp("client", "echo-other-node", DROPPED),
            _world("client", WORLD_A, DROPPED),
            _world("client2", WORLD_B, DROPPED, "UDP"),
            _host("client", SAME_NODE, DROPPED),
            # Ingress is not selected, and replies are not new egress.
            _tcp(WORLD, "echo-other-node", REACHABLE),
            _tcp(SAME_NODE, "echo-same-node", REACHABLE),
        ),
        (_knp("all-egress-deny", {"podSelector": ALL, "policyTypes": ["Egress"]}),),
    ),
    Scenario(
        "all-entities-deny",
        (
            _tcp("client", "echo-same-node", DROPPED),
            _tcp("client", "echo-other-node", DROPPED),
            _world("client", WORLD_A, DROPPED),
            _tcp(WORLD, "echo-other-node", DROPPED),
            # An explicit deny wins over allow-localhost.
            _tcp(SAME_NODE, "echo-same-node", DROPPED),
        ),
        (
            _cnp(
                "all-entities-deny",
                {
                    "endpointSelector": ALL,
                    "ingressDeny": [{"fromEntities": ["all"]}],
                    "egressDeny": [{"toEntities": ["all"]}],
                },
            ),
        ),
    ),
)

_CLIENT_EGRESS_ONLY_TO_ECHO_PROBES = (
    _tcp("client", "echo-same-node", REACHABLE),
    _tcp("client2", "echo-other-node", REACHABLE),
    _udp("client", "echo-other-node", DROPPED),  # only 8080/TCP is allowed
    _world("client", WORLD_A, DROPPED),
    _host("client", SAME_NODE, DROPPED),
    _tcp("echo-other-node", "echo-same-node", REACHABLE),  # echoes are not selected
)

_ECHO_INGRESS_FROM_OTHER_CLIENT_PROBES = (
    _tcp("client2", "echo-same-node", REACHABLE),
    _tcp("client2", "echo-other-node", REACHABLE),
    _udp("client2", "echo-other-node", DROPPED),  # only 8080/TCP is allowed
    _tcp("client", "echo-same-node", DROPPED),
    _tcp("client", "echo-other-node", DROPPED),
    _tcp(WORLD, "echo-other-node", DROPPED),
)

_ALLOW = (
    Scenario(
        "client-egress-only-to-echo",
        _CLIENT_EGRESS_ONLY_TO_ECHO_PROBES,
        (
            _cnp(
                "client-egress-only-to-echo",
                {
                    "endpointSelector": CLIENTS,
                    "egress": [{"toEndpoints": [ECHOES], "toPorts": ECHO_TCP}],
                },
            ),
        ),
    ),
    Scenario(
        "client-egress-only-to-echo-knp",
        _CLIENT_EGRESS_ONLY_TO_ECHO_PROBES,
        (
            _knp(
                "client-egress-only-to-echo",
                {
                    "podSelector": CLIENTS,
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"podSelector": ECHOES}], "ports": KNP_ECHO_TCP}],
                },
            ),
        ),
    ),
    Scenario(
        "echo-ingress-from-other-client",
        _ECHO_INGRESS_FROM_OTHER_CLIENT_PROBES,
        (
            _cnp(
                "echo-ingress-from-other-client",
                {
                    "endpointSelector": ECHOES,
                    "ingress": [{"fromEndpoints": [_labels(other="client")], "toPorts": ECHO_TCP}],
                },
            ),
        ),
    ),
    Scenario(
        "echo-ingress-from-other-client-knp",
        _ECHO_INGRESS_FROM_OTHER_CLIENT_PROBES,
        (
            _knp(
                "echo-ingress-from-other-client",
                {
                    "podSelector": ECHOES,
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [{"podSelector": _labels(other="client")}],
                            "ports": KNP_ECHO_TCP,
                        }
                    ],
                },
            ),
        ),
    ),
    Scenario(
        "echo-ingress-from-outside",
        (
            _tcp(WORLD, "echo-other-node", REACHABLE),
            _udp(WORLD, "echo-same-node", DROPPED),  # any port, but TCP only
            _tcp("client", "echo-other-node", DROPPED),
            _tcp("client", "echo-same-node", DROPPED),
        ),
        (
            _cnp(
                "echo-ingress-from-outside",
                {
                    "endpointSelector": ECHOES,
                    "ingress": [
                        {
                            "fromEntities": ["world"],
                            "toPorts": [{"ports": [{"port": "0", "protocol": "TCP"}]}],
                        }
                    ],
                },
            ),
        ),
    ),
    Scenario(
        "cluster-entity",
        (
            _tcp("client", "echo-same-node", REACHABLE),
            _tcp("client", "echo-other-node", REACHABLE),
            _world("client", WORLD_A, DROPPED),
        ),
        (
            _cnp(
                "cluster-entity",
                {"endpointSelector": CLIENTS, "egress": [{"toEntities": ["cluster"]}]},
            ),
        ),
    ),
    Scenario(
        "to-entities-world",
        (
            _world("client", WORLD_A, REACHABLE),
            _world("client", WORLD_B, REACHABLE, "UDP"),
            _tcp("client", "echo-same-node", DROPPED),
            _tcp("client", "echo-other-node", DROPPED),
            _host("client", SAME_NODE, DROPPED),
        ),
        (
            _cnp(
                "to-entities-world",
                {"endpointSelector": CLIENTS, "egress": [{"toEntities": ["world"]}]},
            ),
        ),
    ),
    Scenario(
        "to-entities-host",
        (
            _host("client", SAME_NODE, THROUGH),
            _host("client", OTHER_NODE, DROPPED),  # another node is remote-node, not host
            _world("client", WORLD_A, DROPPED),
            _tcp("client", "echo-same-node", DROPPED),
        ),
        (
            _cnp(
                "to-entities-host",
                {"endpointSelector": CLIENTS, "egress": [{"toEntities": ["host"]}]},
            ),
        ),
    ),
    Scenario(
        "to-cidr-external",
        (
            _world("client", WORLD_A, REACHABLE),
            _world("client", WORLD_B, DROPPED),  # in the except
            _tcp("client", "echo-other-node", DROPPED),
        ),
        (
            _cnp(
                "to-cidr-external",
                {
                    "endpointSelector": CLIENTS,
                    "egress": [{"toCIDRSet": [{"cidr": CIDR, "except": [CIDR_EXCEPT]}]}],
                },
            ),
        ),
    ),
    Scenario(
        "to-cidr-external-knp",
        (
            _world("client", WORLD_A, REACHABLE),
            _world("client", WORLD_B, DROPPED),
            _tcp("client", "echo-other-node", DROPPED),
        ),
        (
            _knp(
                "to-cidr-external",
                {
                    "podSelector": CLIENTS,
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": CIDR, "except": [CIDR_EXCEPT]}}]}],
                },
            ),
        ),
    ),
)

_DENY = (
    Scenario(
        "echo-ingress-from-other-client-deny",
        (
            _tcp("client", "echo-same-node", REACHABLE),
            _tcp("client", "echo-other-node", REACHABLE),
            _tcp("client2", "echo-same-node", DROPPED),
            _tcp("client2", "echo-other-node", DROPPED),
            _tcp(WORLD, "echo-other-node", REACHABLE),
        ),
        (
            _cnp(
                "echo-ingress-allow-all",
                {"endpointSelector": ECHOES, "ingress": [{"fromEntities": ["all"]}]},
            ),
            _cnp(
                "echo-ingress-from-other-client-deny",
                {
                    "endpointSelector": ECHOES,
                    "ingressDeny": [{"fromEndpoints": [_labels(other="client")]}],
                },
            ),
        ),
    ),
    Scenario(
        "client-egress-to-echo-deny",
        (
            _tcp("client", "echo-same-node", REACHABLE),
            _tcp("client", "echo-other-node", DROPPED),
            _udp("client", "echo-other-node", REACHABLE),  # the deny names 8080/TCP only
            _world("client", WORLD_A, REACHABLE),
        ),
        (
            _cnp(
                "client-egress-allow-all",
                {"endpointSelector": CLIENTS, "egress": [{"toEntities": ["all"]}]},
            ),
            _cnp(
                "client-egress-to-echo-deny",
                {
                    "endpointSelector": CLIENTS,
                    "egressDeny": [
                        {"toEndpoints": [_labels(name="echo-other-node")], "toPorts": ECHO_TCP}
                    ],
                },
            ),
        ),
    ),
    Scenario(
        "client-egress-to-cidr-deny",
        (
            _world("client", WORLD_A, REACHABLE),
            _world("client", WORLD_B, DROPPED),
            _world("client", WORLD_B, DROPPED, "UDP"),
            _tcp("client", "echo-same-node", REACHABLE),
        ),
        (
            _cnp(
                "client-egress-allow-all",
                {"endpointSelector": CLIENTS, "egress": [{"toEntities": ["all"]}]},
            ),
            _cnp(
                "client-egress-to-cidr-deny",
                {"endpointSelector": CLIENTS, "egressDeny": [{"toCIDR": [f"{WORLD_B}/32"]}]},
            ),
        ),
    ),
)

SCENARIOS: tuple[Scenario, ...] = _NO_POLICY + _ALLOW_DENY_ALL + _ALLOW + _DENY
