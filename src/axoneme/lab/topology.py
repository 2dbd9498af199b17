"""The lab's names and addresses, as pure functions of its configuration.

Everything the lab creates is named from here, so ``lab down`` (and the
leak checks in the tests) can find it again, even after a crash:
network namespaces start with ``axn-``, files live under ``LAB_DIR``, and
every process the lab starts carries ``AXONEME_LAB=<LAB_DIR>`` in its environment.

No lab address is ever configured in the machine's own network namespace:
the underlay bridge lives in the ``axn-lab`` namespace, so lab traffic has
no path to the machine's real interfaces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

LAB_DIR = Path("/run/axoneme-lab")
NETNS_PREFIX = "axn-"
LAB_NETNS = "axn-lab"  # holds the underlay bridge and etcd
BRIDGE = "axn-br0"
UNDERLAY = ipaddress.ip_network("172.30.0.0/24")
STORE_IP = str(UNDERLAY.network_address + 1)
ETCD_CLIENT_PORT = 2379
ETCD_UNIX_NAME = "etcd.sock:0"  # etcd's unix listener takes HOST:PORT and binds it in its cwd
ENV_MARK = "AXONEME_LAB"
MAX_NODES = 200

# The world: one host outside the cluster, on the underlay like an external
# client. Its addresses are documentation ranges (RFC 5737) standing in for
# the internet; nodes route those prefixes to it, it routes pod CIDRs back.
WORLD_NETNS = "axn-world"
WORLD_IP = str(UNDERLAY.broadcast_address - 1)  # 172.30.0.254
WORLD_BRIDGE_PORT = "axn-w"
WORLD_ADDRESSES = ("198.51.100.10", "203.0.113.10")
WORLD_PREFIXES = ("198.51.100.0/24", "203.0.113.0/24")
WORLD_SOURCE_IP = WORLD_ADDRESSES[0]  # what `axoneme probe world ...` sends from
WORLD_PORTS = ("80/TCP", "53/UDP", "8080/TCP", "5353/UDP", "80/SCTP", "8080/SCTP")

# Services: cluster IPs come from SERVICE_CIDR (kube-apiserver's customary
# range, apart from the pod CIDR and the underlay); LoadBalancer services get
# their status.loadBalancer.ingress from LB_IP_POOL, and the lab's services
# take spec.externalIPs from EXTERNAL_IP_RANGE (nothing enforces it: Kubernetes
# accepts any address; only this range is routed to the nodes from the world).
# Both are benchmarking ranges (RFC 2544), apart from every other lab range and
# from the documentation ranges, which machines do use (this one's own network
# is 192.0.2.0/24); `lab up` refuses to start if the machine uses them anyway.
# Node ports come from Kubernetes' default range.
SERVICE_CIDR = "10.96.0.0/16"
LB_IP_POOL = "198.18.1.0/24"
EXTERNAL_IP_RANGE = "198.18.0.0/24"
NODE_PORT_RANGE = (30000, 32767)
# What the world's upstream router has learned from the nodes (as from BGP):
# both ranges via every node, equal-cost, one node per flow by its 5-tuple.
ANNOUNCED_PREFIXES = (LB_IP_POOL, EXTERNAL_IP_RANGE)
# Prefixes the lab routes between its namespaces that are not its own links'.
ROUTED_PREFIXES = (*ANNOUNCED_PREFIXES, *WORLD_PREFIXES)


def machine_clashes(machine: list[str]) -> list[tuple[str, str]]:
    """(lab prefix, machine network) pairs that overlap, for the networks the
    machine's own namespace uses (its addresses' subnets, route destinations and
    gateways): a lab route to such a prefix would point at the machine's network."""
    lab = [ipaddress.ip_network(p) for p in ROUTED_PREFIXES]
    return [
        (str(p), str(m))
        for m in (ipaddress.ip_network(n, strict=False) for n in machine)
        if m.version == 4 and m.prefixlen > 0
        for p in lab
        if p.overlaps(m)
    ]


# Each node's pods run in this node's own cgroup v2 subtree, and the node's
# agent attaches its socket load balancer there (on a real node: the root).
CGROUP2_ROOT = Path("/sys/fs/cgroup/unified")
CGROUP_ROOT = CGROUP2_ROOT / "axoneme-lab"


@dataclass(frozen=True)
class LabConfig:
    nodes: int = 2
    pod_cidr: str = "10.42.0.0/16"
    pod_cidr_mask: int = 24
    policy_enforcement: str = "default"  # default | always | never, as Cilium's enable-policy
    policy_audit_mode: bool = False
    health: bool = False  # health endpoints and probes between nodes (agent health checking)
    routing_mode: str = "tunnel"  # tunnel | native (the agents' --routing-mode)
    host_routing: str = "bpf"  # bpf | legacy (the agents' --host-routing)
    # native | disabled: the agents' --nodeport-acceleration (XDP; GRO on the bridge ports)
    nodeport_acceleration: str = "disabled"
    lb_mode: str = "snat"  # snat | dsr: the agents' --bpf-lb-mode
    # reject | drop: the agents' --service-no-backend-response
    no_backend_response: str = "reject"

    def to_json(self) -> str:
        """How the CLI hands the configuration to the supervisor process."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LabConfig:
        config = cls(**json.loads(text))
        config.validate()
        return config

    def validate(self) -> None:
        if self.routing_mode not in ("tunnel", "native"):
            raise ValueError(f"--routing-mode: {self.routing_mode!r} is not tunnel or native")
        if self.host_routing not in ("bpf", "legacy"):
            raise ValueError(f"--host-routing: {self.host_routing!r} is not bpf or legacy")
        if self.lb_mode not in ("snat", "dsr"):
            raise ValueError(f"--bpf-lb-mode: {self.lb_mode!r} is not snat or dsr")
        if self.no_backend_response not in ("reject", "drop"):
            raise ValueError(
                f"--service-no-backend-response: {self.no_backend_response!r} is not reject or drop"
            )
        if self.nodeport_acceleration not in ("native", "disabled"):
            raise ValueError(
                f"--nodeport-acceleration: {self.nodeport_acceleration!r} is not native or disabled"
            )
        if self.policy_enforcement not in ("default", "always", "never"):
            raise ValueError(
                f"--policy-enforcement: {self.policy_enforcement!r} is not default, always or never"
            )
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"--nodes: {self.nodes} is not in 1..{MAX_NODES}")
        try:
            net = ipaddress.ip_network(self.pod_cidr)
        except ValueError as exc:
            raise ValueError(f"--pod-cidr: {exc}") from exc
        if net.version != 4:
            raise ValueError("--pod-cidr: only IPv4 is supported in the lab today")
        for what, other in (
            ("service CIDR", SERVICE_CIDR),
            ("underlay", str(UNDERLAY)),
            ("LoadBalancer pool", LB_IP_POOL),
            ("external IP range", EXTERNAL_IP_RANGE),
        ):
            if net.overlaps(ipaddress.ip_network(other)):
                raise ValueError(f"--pod-cidr: {net} overlaps the lab's {what} {other}")
        if not net.prefixlen <= self.pod_cidr_mask <= 30:
            raise ValueError(
                f"--pod-cidr-mask: {self.pod_cidr_mask} must be between {net.prefixlen} and 30"
            )
        available = 2 ** (self.pod_cidr_mask - net.prefixlen)
        if self.nodes > available:
            raise ValueError(
                f"--nodes: {self.pod_cidr} has only {available} /{self.pod_cidr_mask} "
                f"node CIDRs for {self.nodes} nodes"
            )


@dataclass(frozen=True)
class NodePlan:
    index: int  # 1-based
    name: str
    netns: str
    ip: str
    pod_cidr: str
    bridge_port: str  # the underlay veth's end in the lab namespace

    @property
    def dir(self) -> Path:
        return LAB_DIR / "nodes" / self.name

    @property
    def socket(self) -> Path:
        return self.dir / "agent.sock"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def log(self) -> Path:
        return self.dir / "agent.log"

    @property
    def observer_socket(self) -> Path:
        return self.dir / "hubble.sock"


def node_plans(config: LabConfig) -> list[NodePlan]:
    cidrs = ipaddress.ip_network(config.pod_cidr).subnets(new_prefix=config.pod_cidr_mask)
    plans = []
    for i in range(1, config.nodes + 1):
        # Node i takes the i-th CIDR of the pool (index 0 is left free, like 10.42.0.0/24).
        cidr = next(cidrs) if i > 1 else (next(cidrs), next(cidrs))[1]
        plans.append(
            NodePlan(
                index=i,
                name=f"node{i}",
                netns=f"{NETNS_PREFIX}node{i}",
                ip=str(UNDERLAY.network_address + 10 + i),
                pod_cidr=str(cidr),
                bridge_port=f"axn-n{i}",
            )
        )
    return plans


def pod_netns(namespace: str, name: str, uid: str) -> str:
    digest = hashlib.sha256(f"{namespace}/{name}/{uid}".encode()).hexdigest()[:10]
    return f"{NETNS_PREFIX}p-{digest}"


def store_unix_path() -> Path:
    return LAB_DIR / ETCD_UNIX_NAME


def store_url_for_nodes() -> str:
    return f"http://{STORE_IP}:{ETCD_CLIENT_PORT}"


def cni_bin_dir() -> Path:
    return LAB_DIR / "bin"


BPF_PIN_ROOT = Path("/sys/fs/bpf/axoneme-lab")


def bpf_pin_dir(plan: NodePlan) -> Path:
    """Where a lab node's agent pins its maps and programs (bpffs is machine-wide)."""
    return BPF_PIN_ROOT / plan.name


def node_cgroup(plan: NodePlan) -> Path:
    """The cgroup v2 directory holding a lab node's pod processes."""
    return CGROUP_ROOT / plan.name


def state_file() -> Path:
    return LAB_DIR / "lab.json"


def world_log() -> Path:
    return LAB_DIR / "world.log"


def world_state_file() -> Path:
    return LAB_DIR / "world.json"


# Flow observability: each agent's observer (gRPC) and /metrics on its
# underlay address, the relay on the lab namespace's (as Hubble and Cilium).
OBSERVER_PORT = 4244
AGENT_METRICS_PORT = 9962
RELAY_PORT = 4245
RELAY_METRICS_PORT = 9966


def relay_socket() -> Path:
    return LAB_DIR / "relay.sock"


def relay_log() -> Path:
    return LAB_DIR / "relay.log"
