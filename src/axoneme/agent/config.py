"""Agent configuration: flags, defaults, and the checks on them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = Path("/var/run/axoneme/agent.sock")
DEFAULT_STATE_DIR = Path("/var/lib/axoneme")
DEFAULT_BPF_PIN_DIR = Path("/sys/fs/bpf/axoneme")


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
    lease_ttl: int = 15  # seconds: how long a dead node's entries outlive it


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
        "--lease-ttl",
        type=int,
        default=15,
        help="seconds the node's store entries outlive the agent (node lease TTL)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    ns = p.parse_args(argv)
    if not ns.store.startswith(("http://", "unix:", "embedded:")):
        p.error(f"--store: {ns.store!r} must be http://HOST:PORT, unix:PATH or embedded:PATH")
    if not 2 <= ns.lease_ttl <= 3600:
        p.error(f"--lease-ttl: {ns.lease_ttl} must be between 2 and 3600 seconds")
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
        lease_ttl=ns.lease_ttl,
    )
