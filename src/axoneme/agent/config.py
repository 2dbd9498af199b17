"""Agent configuration: flags, defaults, and the checks on them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from axoneme.loadbalancer import config as lb_config
from axoneme.observer import config as observer_config

DEFAULT_SOCKET = Path("/var/run/axoneme/agent.sock")
DEFAULT_STATE_DIR = Path("/var/lib/axoneme")
DEFAULT_BPF_PIN_DIR = Path("/sys/fs/bpf/axoneme")


@dataclass(frozen=True)
class HealthConfig:
    """Cilium's health checking: a health endpoint on this node, probes to every node."""

    enabled: bool = False
    netns: str = "axoneme-health"  # the health endpoint's named network namespace
    interval: float = 1.0  # seconds between probe rounds
    window: int = 30  # probes per path the statistics cover
    loss_threshold: float = 0.05  # alert above this loss ratio
    jitter_threshold: float = 0.02  # alert above this jitter, seconds


@dataclass(frozen=True)
class AgentConfig:
    node: str
    store: str  # "http://host:port" (etcd) or "embedded:/path/to/file.json"
    state_dir: Path = DEFAULT_STATE_DIR
    socket: Path = DEFAULT_SOCKET
    enable_ip_forward: bool = True
    log_level: str = "INFO"
    bpf_pin_dir: Path = DEFAULT_BPF_PIN_DIR
    policy_enforcement: str = "default"  # default | always | never
    policy_audit_mode: bool = False
    allow_localhost: bool = True
    lb: lb_config.LBAgentConfig = lb_config.LBAgentConfig()  # noqa: RUF009 - frozen
    routing_mode: str = "tunnel"  # tunnel | native (docs/datapath.md, "Routing")
    host_routing: str = "bpf"  # bpf | legacy
    lease_ttl: int = 15  # seconds: how long a dead node's entries outlive it
    # Where the pod CIDR comes from, as Cilium's `ipam` option: the operator's
    # CiliumNode (cluster-pool) or the Node's spec.podCIDR (kubernetes).
    ipam: str = "kubernetes"
    observer: observer_config.ObserverConfig = field(default_factory=observer_config.ObserverConfig)
    health: HealthConfig = HealthConfig()
    # Count TCP retransmissions per flow at tp_btf/tcp_retransmit_skb (agent/tcpretrans.py).
    tcp_retransmit_tracking: bool = False


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    p = argparse.ArgumentParser(prog="axoneme-agent", description="Axoneme node agent")
    p.add_argument("--node", required=True, help="this node's name (its Node resource)")
    p.add_argument(
        "--store",
        required=True,
        help="etcd endpoint (http://HOST:PORT) or embedded:PATH for a single node",
    )
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET)
    p.add_argument(
        "--no-ip-forward",
        action="store_true",
        help="do not enable IPv4 forwarding in this network namespace",
    )
    p.add_argument(
        "--bpf-pin-dir",
        type=Path,
        default=DEFAULT_BPF_PIN_DIR,
        help="bpffs directory for the datapath's pinned maps and programs",
    )
    p.add_argument(
        "--policy-enforcement",
        choices=["default", "always", "never"],
        default="default",
        help="as Cilium's enable-policy",
    )
    p.add_argument(
        "--policy-audit-mode",
        action="store_true",
        help="report would-be policy drops as AUDIT instead of dropping",
    )
    p.add_argument(
        "--allow-localhost",
        choices=["auto", "policy"],
        default="auto",
        help="auto: the node always reaches its endpoints; policy: as policy says",
    )
    p.add_argument(
        "--ipam",
        choices=["cluster-pool", "kubernetes"],
        default="kubernetes",
        help="pod CIDR from the operator's CiliumNode, or from Node.spec.podCIDR",
    )
    p.add_argument(
        "--lease-ttl",
        type=int,
        default=15,
        help="seconds the node's store entries outlive the agent (node lease TTL)",
    )
    p.add_argument(
        "--enable-health-checking",
        action="store_true",
        help="run a health endpoint and probe every node (as cilium-health)",
    )
    p.add_argument("--health-netns", default="axoneme-health", help="health endpoint netns name")
    p.add_argument("--health-interval", type=float, default=1.0, help="seconds between probes")
    p.add_argument("--health-window", type=int, default=30, help="probes per path in the stats")
    p.add_argument("--health-loss-threshold", type=float, default=0.05, help="loss ratio alert")
    p.add_argument(
        "--health-jitter-threshold", type=float, default=0.02, help="jitter alert, seconds"
    )
    p.add_argument(
        "--enable-tcp-retransmit-tracking",
        action="store_true",
        help="count TCP retransmissions per flow of this node's pods (needs kernel BTF)",
    )
    p.add_argument(
        "--routing-mode",
        choices=["tunnel", "native"],
        default="tunnel",
        help="tunnel (default): VXLAN, source identity in the VNI; native: kernel routes",
    )
    p.add_argument(
        "--host-routing",
        choices=["bpf", "legacy"],
        default="bpf",
        help="bpf (default): redirect_peer/redirect_neigh past the stack; legacy: the stack routes",
    )
    observer_config.add_flags(p)
    lb_config.add_flags(p)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    ns = p.parse_args(argv)
    try:
        observer = observer_config.from_args(ns)
    except ValueError as exc:
        p.error(str(exc))
    if not ns.store.startswith(("http://", "unix:", "embedded:")):
        p.error(f"--store: {ns.store!r} must be http://HOST:PORT, unix:PATH or embedded:PATH")
    if not 2 <= ns.lease_ttl <= 3600:
        p.error(f"--lease-ttl: {ns.lease_ttl} must be between 2 and 3600 seconds")
    health = HealthConfig(
        enabled=ns.enable_health_checking,
        netns=ns.health_netns,
        interval=ns.health_interval,
        window=ns.health_window,
        loss_threshold=ns.health_loss_threshold,
        jitter_threshold=ns.health_jitter_threshold,
    )
    problem = health_problem(health)
    if problem:
        p.error(problem)
    return AgentConfig(
        node=ns.node,
        store=ns.store,
        state_dir=ns.state_dir,
        socket=ns.socket,
        enable_ip_forward=not ns.no_ip_forward,
        log_level=ns.log_level,
        bpf_pin_dir=ns.bpf_pin_dir,
        policy_enforcement=ns.policy_enforcement,
        policy_audit_mode=ns.policy_audit_mode,
        allow_localhost=ns.allow_localhost == "auto",
        lb=_lb_config(p, ns),
        routing_mode=ns.routing_mode,
        host_routing=ns.host_routing,
        lease_ttl=ns.lease_ttl,
        ipam=ns.ipam,
        observer=observer,
        health=health,
        tcp_retransmit_tracking=ns.enable_tcp_retransmit_tracking,
    )


def _lb_config(p: argparse.ArgumentParser, ns: argparse.Namespace) -> lb_config.LBAgentConfig:
    try:
        return lb_config.from_args(ns)
    except ValueError as exc:
        p.error(str(exc))


def health_problem(h: HealthConfig) -> str | None:
    """What is wrong with the health flags (naming the flag), or None."""
    if not h.netns or "/" in h.netns or h.netns in (".", ".."):
        return f"--health-netns: {h.netns!r} is not a namespace name"
    if not 0.05 <= h.interval <= 3600:
        return f"--health-interval: {h.interval} is not between 0.05 and 3600 seconds"
    if not 2 <= h.window <= 10000:
        return f"--health-window: {h.window} is not between 2 and 10000"
    if not 0.0 <= h.loss_threshold <= 1.0:
        return f"--health-loss-threshold: {h.loss_threshold} is not a ratio in [0, 1]"
    if not 0.0 < h.jitter_threshold <= 60:
        return f"--health-jitter-threshold: {h.jitter_threshold} is not in (0, 60] seconds"
    return None
