"""Routing mode and host routing of the node's datapath (docs/datapath.md, "Routing").

``tunnel``: the agent owns a VXLAN device in collect-metadata mode and runs
``from_overlay`` on its ingress; ``from_container`` encapsulates traffic for
pods on other nodes (the ipcache's ``tunnel_ip``) with the source identity
in the VNI. ``native``: pod traffic between nodes follows the kernel routes
``noderoutes`` keeps. Host routing ``bpf`` lets the programs forward past the
stack (``bpf_redirect_peer`` to local pods, ``bpf_redirect_neigh`` to other
nodes in native mode); ``legacy`` hands every packet to the stack. Both are
written into ``axo_config``, which the programs read per packet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from axoneme.datapath.linux import netdev
from axoneme.datapath.linux.maps import CFG_HOST_ROUTING_BPF, CFG_TUNNEL, DatapathConfig

if TYPE_CHECKING:
    from axoneme.agent.daemon import AgentContext

log = logging.getLogger(__name__)

ROUTING_MODES = ("tunnel", "native")
HOST_ROUTINGS = ("bpf", "legacy")
UNDERLAY_MTU = 1500


@dataclass(frozen=True)
class Routing:
    mode: str  # tunnel | native
    host: str  # bpf | legacy

    def __post_init__(self) -> None:
        if self.mode not in ROUTING_MODES:
            raise ValueError(f"routing mode: {self.mode!r} is not tunnel or native")
        if self.host not in HOST_ROUTINGS:
            raise ValueError(f"host routing: {self.host!r} is not bpf or legacy")

    def flags(self) -> int:
        return (CFG_TUNNEL if self.mode == "tunnel" else 0) | (
            CFG_HOST_ROUTING_BPF if self.host == "bpf" else 0
        )

    def pod_mtu(self) -> int:
        """Encapsulation must fit the underlay: the pod gives up the tunnel's 50 bytes."""
        return UNDERLAY_MTU - (netdev.TUNNEL_OVERHEAD if self.mode == "tunnel" else 0)

    def status(self) -> dict[str, str]:
        """As ``cilium status`` words it."""
        network = "Tunnel [vxlan]" if self.mode == "tunnel" else "Native"
        return {
            "mode": self.mode,
            "hostRouting": self.host,
            "summary": f"Network: {network}   Host: {'BPF' if self.host == 'bpf' else 'Legacy'}",
        }


def configure(kernel: object, routing: Routing) -> DatapathConfig:
    """Create what the mode needs and program ``axo_config`` (synchronous netlink + bpf)."""
    from axoneme.datapath.linux.writer import KernelDatapath

    assert isinstance(kernel, KernelDatapath)
    tunnel_ifindex = 0
    if routing.mode == "tunnel":
        tunnel_ifindex = netdev.ensure_vxlan_device()
        kernel.attach_overlay(tunnel_ifindex)
    config = DatapathConfig(routing.flags(), tunnel_ifindex)
    kernel.set_config(config)
    return config


async def run(ctx: AgentContext) -> None:
    """Agent component: set the mode up once, then hold (it lives in pinned state)."""
    routing = Routing(ctx.config.routing_mode, ctx.config.host_routing)
    config = await asyncio.to_thread(configure, ctx.kernel, routing)
    ctx.service.routing = routing.status()
    log.info(
        "routing %s, host routing %s (flags %#x, tunnel device %d)",
        routing.mode,
        routing.host,
        config.flags,
        config.tunnel_ifindex,
    )
    await asyncio.Event().wait()
