"""The agent's load-balancing settings (kube-proxy replacement) and their flags.

Flag names follow Cilium's agent: ``--bpf-lb-algorithm``,
``--bpf-lb-maglev-table-size``, ``--bpf-lb-sock``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from axoneme.loadbalancer.maglev import DEFAULT_TABLE_SIZE, TABLE_SIZES

__all__ = [
    "DEFAULT_CGROUP_ROOT",
    "NO_BACKEND_RESPONSES",
    "LBAgentConfig",
    "add_flags",
    "from_args",
]

# The cgroup v2 mount on this distribution's hybrid hierarchy.
DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup/unified")
NO_BACKEND_RESPONSES = ("reject", "drop")


@dataclass(frozen=True)
class LBAgentConfig:
    socket_lb: bool = True
    algorithm: str = "random"  # random | maglev: the default; a service annotation overrides
    maglev_table_size: int = DEFAULT_TABLE_SIZE
    # Where the socket LB attaches: the cgroup v2 root on a real node
    # (DEFAULT_CGROUP_ROOT), the node's own subtree in the lab (its pods'
    # processes live there). None: no socket LB. There is no implicit default:
    # attached at the root, the programs serve every process of the machine
    # and outlive the agent, which an agent started for a test must not do.
    cgroup_root: Path | None = None
    # NodePort / LoadBalancer / external IPs from outside: tc on the device
    # holding the node's address (bpf_host.c). Needs the socket LB's maps.
    node_port: bool = True
    # native: NodePort translation in XDP on that device first (bpf_xdp.c),
    # tc for what XDP cannot serve; disabled: tc only. Cilium's
    # --node-port-acceleration (both spellings are accepted).
    acceleration: str = "disabled"
    # snat | dsr: how a backend on another node is reached (Cilium's --bpf-lb-mode).
    mode: str = "snat"
    # reject | drop: a NodePort/LB/external-IP packet whose frontend has no usable
    # backend is answered with ICMP port unreachable (clients fail at once) or
    # only dropped. Cilium's --service-no-backend-response, default reject.
    no_backend_response: str = "reject"
    # Answer HTTP on each LoadBalancer + externalTrafficPolicy Local service's
    # healthCheckNodePort (with NodePort on). Cilium's --enable-health-check-nodeport.
    health_check_node_port: bool = True


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bpf-lb-sock",
        choices=["true", "false"],
        default="true",
        help="socket-level load balancing for services (cgroup connect4/sendmsg4/...)",
    )
    p.add_argument(
        "--bpf-lb-algorithm",
        choices=["random", "maglev"],
        default="random",
        help="backend selection for services without the lb-algorithm annotation",
    )
    p.add_argument(
        "--bpf-lb-maglev-table-size",
        type=int,
        default=DEFAULT_TABLE_SIZE,
        help=f"Maglev lookup table entries per service, one of {', '.join(map(str, TABLE_SIZES))}",
    )
    p.add_argument(
        "--enable-node-port",
        choices=["true", "false"],
        default="true",
        help="serve NodePort, LoadBalancer and external IPs to clients outside the cluster",
    )
    p.add_argument(
        "--nodeport-acceleration",
        "--node-port-acceleration",
        dest="nodeport_acceleration",
        choices=["native", "disabled"],
        default="disabled",
        help="NodePort/LoadBalancer/external-IP translation in native XDP on the node's device",
    )
    p.add_argument(
        "--bpf-lb-mode",
        choices=["snat", "dsr"],
        default="snat",
        help="NodePort to a backend on another node: SNAT to this node, or DSR (the backend's "
        "node replies to the client directly)",
    )
    p.add_argument(
        "--service-no-backend-response",
        choices=NO_BACKEND_RESPONSES,
        default="reject",
        help="NodePort/LoadBalancer/external-IP traffic to a service without backends: "
        "reject (ICMP port unreachable, the client fails at once) or drop",
    )
    p.add_argument(
        "--enable-health-check-nodeport",
        choices=["true", "false"],
        default="true",
        help="serve healthCheckNodePort for LoadBalancer services with externalTrafficPolicy "
        "Local (HTTP 200 when this node has a ready backend, 503 when not)",
    )
    p.add_argument(
        "--cgroup-root",
        type=Path,
        default=None,
        help="cgroup v2 directory whose processes get socket load balancing "
        f"(a real node: {DEFAULT_CGROUP_ROOT}); without it there is no socket LB",
    )


def from_args(ns: argparse.Namespace) -> LBAgentConfig:
    """The settings from parsed flags; ValueError naming the flag when one is wrong."""
    if ns.cgroup_root is not None and not (ns.cgroup_root / "cgroup.procs").is_file():
        raise ValueError(f"--cgroup-root: {ns.cgroup_root} is not a cgroup v2 directory")
    if ns.bpf_lb_maglev_table_size not in TABLE_SIZES:
        raise ValueError(
            f"--bpf-lb-maglev-table-size: {ns.bpf_lb_maglev_table_size} is not one of "
            f"{', '.join(map(str, TABLE_SIZES))}"
        )
    return LBAgentConfig(
        socket_lb=ns.bpf_lb_sock == "true",
        algorithm=ns.bpf_lb_algorithm,
        maglev_table_size=ns.bpf_lb_maglev_table_size,
        cgroup_root=ns.cgroup_root,
        node_port=ns.enable_node_port == "true",
        acceleration=ns.nodeport_acceleration,
        mode=ns.bpf_lb_mode,
        no_backend_response=ns.service_no_backend_response,
        health_check_node_port=ns.enable_health_check_nodeport == "true",
    )
