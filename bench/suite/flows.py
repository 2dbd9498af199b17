"""The reference document's qperf matrix, as data: flows, datapaths, and what each needs.

A flow runs a qperf server in one role's network namespace and the client in another's,
dialling a target address. Every datapath environment (plain routing, iptables +
kube-proxy, an Axoneme lab mode) provides the same roles:

- ``node1``, ``node2``: the nodes (``node1`` takes external traffic);
- ``client``: a pod on node1; ``server-same``: a pod on node1; ``server-other``: a pod on
  node2; ``world``: a host outside the cluster, on the underlay;

and these targets: the roles' own addresses, plus ``svc-same`` / ``svc-other`` (a
Service's ClusterIP whose one backend is ``server-same`` / ``server-other``) and
``nodeport`` (node1's address, where NodePorts are dialled). An environment that cannot
provide a target says why, and the flows that need it are reported as not available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from suite.qperf import Place, Ports

ROLES = ("node1", "node2", "world", "client", "server-same", "server-other")

# One port pair per server role, so a Service's port, targetPort and nodePort can all be
# the same number (see suite.qperf on why qperf needs that) and two NodePorts coexist.
PORTS_SAME = Ports(30765, 30766)
PORTS_OTHER = Ports(31765, 31766)
SERVER_PORTS: Mapping[str, Ports] = {
    "server-same": PORTS_SAME,
    "server-other": PORTS_OTHER,
    "node2": PORTS_SAME,
}

LIMIT = "limit"
DATAPATHS = (
    LIMIT,  # plain kernel routing, no programs, no rules
    "axoneme-tunnel",
    "axoneme-native",
    "axoneme-host-routing",
    "iptables-kube-proxy",
)


@dataclass(frozen=True)
class Flow:
    name: str
    title: str  # the reference table's wording
    client: str  # role
    server: str  # role
    target: str  # role or service target the client dials

    @property
    def ports(self) -> Ports:
        return SERVER_PORTS[self.server]


FLOWS = (
    Flow("node-to-node", "node-to-node (baseline)", "node1", "node2", "node2"),
    Flow("pod-to-pod-same-node", "pod-to-pod, same node", "client", "server-same", "server-same"),
    Flow(
        "pod-to-pod-other-node", "pod-to-pod, other node", "client", "server-other", "server-other"
    ),
    Flow(
        "pod-to-service-same-node", "pod-to-Service, same node", "client", "server-same", "svc-same"
    ),
    Flow(
        "pod-to-service-other-node",
        "pod-to-Service, other node",
        "client",
        "server-other",
        "svc-other",
    ),
    Flow(
        "external-to-nodeport-same-node",
        "external to NodePort, same node",
        "world",
        "server-same",
        "nodeport",
    ),
    Flow(
        "external-to-nodeport-other-node",
        "external to NodePort, other node",
        "world",
        "server-other",
        "nodeport",
    ),
)
FLOW_BY_NAME: Mapping[str, Flow] = {f.name: f for f in FLOWS}

# The limit has no Services: a flow to a Service is compared with the same path without
# translation (the pod's own address), which the limit measures once as pod-to-pod. The
# limit's NodePort flows dial the backend pod's address from the world, routed through
# node1 both ways (the path a NodePort with SNAT takes).
LIMIT_OF: Mapping[str, str] = {
    "pod-to-service-same-node": "pod-to-pod-same-node",
    "pod-to-service-other-node": "pod-to-pod-other-node",
}


def flows_for(datapath: str) -> tuple[Flow, ...]:
    """The limit measures the baseline and the untranslated paths; the others the rest.

    The underlay is the same for every datapath, so node-to-node is measured once.
    """
    if datapath == LIMIT:
        return tuple(f for f in FLOWS if f.name not in LIMIT_OF)
    return tuple(f for f in FLOWS if f.name != "node-to-node")


def limit_flow(flow: str) -> str:
    return LIMIT_OF.get(flow, flow)


@dataclass(frozen=True)
class Env:
    """A datapath set up and ready: role -> netns path, target -> address, or why not."""

    netns: Mapping[str, str]
    targets: Mapping[str, str]
    missing: Mapping[str, str]  # target -> reason it cannot be dialled here
    detail: str = ""  # what this environment is, for the report
    flow_targets: Mapping[str, str] = field(default_factory=dict)  # flow -> address override
    cgroups: Mapping[str, str] = field(default_factory=dict)  # role -> its processes' cgroup

    def place(self, role: str) -> Place:
        return Place(self.netns[role], self.cgroups.get(role))

    def address(self, flow: Flow) -> str | None:
        return self.flow_targets.get(flow.name) or self.targets.get(flow.target)

    def unavailable(self, flow: Flow) -> str | None:
        if self.address(flow) is not None:
            return None
        return self.missing.get(flow.target, f"no {flow.target} in this environment")
