"""Creating and removing the lab's namespaces and underlay links (netlink, no subprocesses)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from pyroute2 import IPRoute

from axoneme.datapath.linux.netdev import netlink_in
from axoneme.kit.ethtool import set_gro, set_tx_csum
from axoneme.kit.netns import entered
from axoneme.lab.topology import (
    ANNOUNCED_PREFIXES,
    BRIDGE,
    LAB_NETNS,
    NETNS_PREFIX,
    STORE_IP,
    UNDERLAY,
    WORLD_ADDRESSES,
    WORLD_BRIDGE_PORT,
    WORLD_IP,
    WORLD_NETNS,
    WORLD_PREFIXES,
    NodePlan,
)

NETNS_DIR = Path("/run/netns")


def machine_networks() -> list[str]:
    """The IPv4 networks the machine's own namespace uses: its addresses' subnets,
    route destinations and gateways (read only; ``lab up`` keeps clear of them)."""
    out = []
    with IPRoute() as ipr:
        for a in ipr.get_addr(family=socket.AF_INET):
            out.append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            if r.get_attr("RTA_DST"):
                out.append(f"{r.get_attr('RTA_DST')}/{r['dst_len']}")
            if r.get_attr("RTA_GATEWAY"):
                out.append(f"{r.get_attr('RTA_GATEWAY')}/32")
    return out


def lab_namespaces() -> list[str]:
    """Every network namespace the lab (or a crashed earlier lab) made."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(NETNS_PREFIX))


def create_namespace(name: str) -> None:
    """``ip netns add``: a named namespace under /run/netns (see netdev on why not pyroute2)."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)


def _sysctl(ns: str, name: str, value: str) -> None:
    # /proc/sys/net shows the namespace of the thread that opens it.
    with entered(str(NETNS_DIR / ns)), open(f"/proc/sys/{name.replace('.', '/')}", "w") as f:
        f.write(value)


def create_underlay() -> None:
    create_namespace(LAB_NETNS)
    with netlink_in(str(NETNS_DIR / LAB_NETNS)) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        index = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.addr("add", index=index, address=STORE_IP, prefixlen=UNDERLAY.prefixlen)
        ipr.link("set", index=index, state="up")


def create_node(plan: NodePlan) -> None:
    create_namespace(plan.netns)
    _attach_to_bridge(plan.netns, plan.bridge_port)
    with netlink_in(str(NETNS_DIR / plan.netns)) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=eth0, address=plan.ip, prefixlen=UNDERLAY.prefixlen)
        ipr.link("set", index=eth0, state="up")
    # Loose reverse-path filtering would drop pod traffic that arrives on lxc devices
    # for prefixes routed elsewhere; the lab's node namespaces route, they do not filter.
    for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
        _sysctl(plan.netns, key, "0")


def _attach_to_bridge(netns: str, bridge_port: str) -> None:
    """A veth from the underlay bridge to ``eth0`` in ``netns`` (down; the caller configures it)."""
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        with netlink_in(str(NETNS_DIR / LAB_NETNS)) as lab:
            lab.link(
                "add", ifname=bridge_port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd}
            )
            port = lab.link_lookup(ifname=bridge_port)[0]
            lab.link("set", index=port, master=lab.link_lookup(ifname=BRIDGE)[0], state="up")
    finally:
        os.close(fd)


def enable_xdp_forwarding(plans: list[NodePlan]) -> None:
    """What XDP forwarding on the nodes' veth ``eth0`` needs (kit/ethtool.py says why):
    GRO on the bridge's ports, and complete checksums on everything sent onto the
    underlay, as from a real wire."""
    for plan in plans:
        set_gro(LAB_NETNS, plan.bridge_port, True)
        set_tx_csum(plan.netns, "eth0", False)
    set_gro(LAB_NETNS, WORLD_BRIDGE_PORT, True)
    set_tx_csum(WORLD_NETNS, "eth0", False)


def create_world(plans: list[NodePlan]) -> None:
    """The host outside the cluster: ``axn-world`` on the underlay, and routes both ways.

    Its documentation-range addresses live on ``lo`` (this kernel has no dummy
    links); every node routes their prefixes via the world's underlay address and
    the world routes each node's pod CIDR via that node, so replies come back.
    LoadBalancer and external-IP addresses (``ANNOUNCED_PREFIXES``) are routed
    as by an upstream router that learned them from every node: one multipath
    route, hashed per flow on its 5-tuple (``fib_multipath_hash_policy`` 1), so
    different connections enter through different nodes. Nodes are fixed for a
    lab's life, so these routes are too. No default route anywhere: the world
    reaches nothing but the lab.
    """
    create_namespace(WORLD_NETNS)
    _attach_to_bridge(WORLD_NETNS, WORLD_BRIDGE_PORT)
    _sysctl(WORLD_NETNS, "net.ipv4.fib_multipath_hash_policy", "1")
    with netlink_in(str(NETNS_DIR / WORLD_NETNS)) as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")
        for address in WORLD_ADDRESSES:
            ipr.addr("add", index=lo, address=address, prefixlen=32)
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=eth0, address=WORLD_IP, prefixlen=UNDERLAY.prefixlen)
        ipr.link("set", index=eth0, state="up")
        for plan in plans:
            ipr.route("add", dst=plan.pod_cidr, gateway=plan.ip)
        for prefix in ANNOUNCED_PREFIXES:
            ipr.route("add", dst=prefix, multipath=[{"gateway": p.ip} for p in plans])
    for plan in plans:
        with netlink_in(str(NETNS_DIR / plan.netns)) as ipr:
            for prefix in WORLD_PREFIXES:
                ipr.route("add", dst=prefix, gateway=WORLD_IP)


def delete_namespace(name: str) -> None:
    """Remove a lab namespace; its links (and their peers elsewhere) go with it."""
    if not name.startswith(NETNS_PREFIX):
        raise ValueError(f"refusing to delete {name!r}: not a lab namespace")
    if (NETNS_DIR / name).exists():
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
