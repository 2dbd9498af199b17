"""Pod and node network devices: veth pairs, addresses, routes, static neighbours.

Layout (as in Cilium's veth mode): the pod has ``<ifname>`` with a /32 and a
default route via the node's router address, reached through a permanent
neighbour entry (no ARP); the node has a ``lxc…`` veth per pod with a /32
route and a permanent neighbour for the pod. The router address sits on the
``axn_host`` device so the node owns it. Like Cilium's ``cilium_host``/
``cilium_net``, that device is one end of a veth pair (this kernel has no
``dummy`` driver, and a veth pair is what Cilium uses anyway).

Every function here is synchronous netlink I/O; callers run it off the event
loop. Each opens its own sockets: pyroute2 sockets are not shared across threads.

Never use pyroute2's ``IPRoute(netns=...)`` or ``pyroute2.netns``: they fork a
Python child, and a forked child that gets a signal writes it into asyncio's
inherited wakeup fd, so the parent's loop sees a SIGTERM it never got (the
agent "exited 0" after every pod ADD). ``netlink_in`` opens the socket from a
thread that has joined the namespace instead: a netlink socket stays bound to
the namespace it was created in.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from axoneme.kit.netns import entered

HOST_DEVICE = "axn_host"
HOST_DEVICE_PEER = "axn_net"
HOST_IF_PREFIX = "lxc"


class LinkError(Exception):
    """A device could not be created or configured."""


@dataclass(frozen=True)
class EndpointLink:
    host_ifname: str
    host_mac: str
    pod_ifname: str
    pod_mac: str
    host_ifindex: int


def netlink_in(netns: str) -> IPRoute:
    """An rtnetlink socket inside ``netns`` (a path), opened without forking."""
    with entered(netns):
        return IPRoute()


def _mac(ipr: IPRoute, index: int) -> str:
    return str(ipr.link("get", index=index)[0].get("IFLA_ADDRESS"))


def ensure_host_device(router_ip: str, prefixlen: int = 32) -> None:
    """The node's ``axn_host`` device (with its ``axn_net`` peer) holding the router address."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=HOST_DEVICE)
        if not found:
            ipr.link("add", ifname=HOST_DEVICE, kind="veth", peer=HOST_DEVICE_PEER)
            found = ipr.link_lookup(ifname=HOST_DEVICE)
        index = found[0]
        ipr.link("set", index=ipr.link_lookup(ifname=HOST_DEVICE_PEER)[0], state="up")
        have = {a.get("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if router_ip not in have:
            ipr.addr("add", index=index, address=router_ip, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")


TUNNEL_DEVICE = "axn_vxlan"
VXLAN_PORT = 8472  # Cilium's (the Linux default)
TUNNEL_OVERHEAD = 50  # outer IPv4 + UDP + VXLAN + inner Ethernet


def ensure_vxlan_device(name: str = TUNNEL_DEVICE, port: int = VXLAN_PORT) -> int:
    """The node's VXLAN device in collect-metadata mode (remote and VNI come from
    the datapath's tunnel key, not from the device); returns its ifindex."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                ipr.link(
                    "add",
                    ifname=name,
                    kind="vxlan",
                    vxlan_collect_metadata=1,
                    vxlan_port=port,
                    vxlan_learning=0,
                )
            except NetlinkError as exc:
                raise LinkError(f"creating {name} (vxlan external, port {port}): {exc}") from exc
            found = ipr.link_lookup(ifname=name)
        ipr.link("set", index=found[0], state="up")
        return int(found[0])


def write_sysctl(name: str, value: str) -> None:
    with open(f"/proc/sys/{name.replace('.', '/')}", "w") as f:
        f.write(value)


def create_endpoint_link(
    *, netns: str, ifname: str, host_ifname: str, address: str, router_ip: str, mtu: int = 1500
) -> EndpointLink:
    """Create and wire the pod's veth pair. On any failure, nothing is left behind."""
    try:
        ns_fd = os.open(netns, os.O_RDONLY)
    except OSError as exc:
        raise LinkError(f"cannot open netns {netns}: {exc.strerror}") from exc
    try:
        with IPRoute() as ipr:
            try:
                ipr.link(
                    "add",
                    ifname=host_ifname,
                    kind="veth",
                    mtu=mtu,
                    peer={"ifname": ifname, "net_ns_fd": ns_fd, "mtu": mtu},
                )
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise LinkError(
                        f"device {host_ifname} on the node or {ifname} in {netns} already exists"
                    ) from exc
                raise LinkError(f"veth {host_ifname}: {exc}") from exc
            try:
                return _wire(ipr, netns, ifname, host_ifname, address, router_ip)
            except Exception:
                _delete_quietly(ipr, host_ifname)
                raise
    finally:
        os.close(ns_fd)


def _disable_ipv6(ifname: str) -> None:
    """No IPv6 on a pod's links (pods are IPv4-only; the datapath drops IPv6):
    the kernel then sends no router solicitations or MLD reports to be dropped.
    Per-netns: call it in a thread inside the link's namespace."""
    with contextlib.suppress(FileNotFoundError):  # a kernel without IPv6
        write_sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", "1")


def _wire(
    ipr: IPRoute, netns: str, ifname: str, host_ifname: str, address: str, router_ip: str
) -> EndpointLink:
    host_index = ipr.link_lookup(ifname=host_ifname)[0]
    host_mac = _mac(ipr, host_index)
    _disable_ipv6(host_ifname)
    with entered(netns):
        _disable_ipv6(ifname)
    try:
        with netlink_in(netns) as pod:
            pod_index = pod.link_lookup(ifname=ifname)[0]
            pod_mac = _mac(pod, pod_index)
            lo = pod.link_lookup(ifname="lo")
            if lo:
                pod.link("set", index=lo[0], state="up")
            pod.addr("add", index=pod_index, address=address, prefixlen=32)
            pod.link("set", index=pod_index, state="up")
            pod.route("add", dst=f"{router_ip}/32", oif=pod_index, scope=253)  # scope link
            pod.route("add", dst="0.0.0.0/0", gateway=router_ip, oif=pod_index)
            pod.neigh(
                "add",
                dst=router_ip,
                lladdr=host_mac,
                ifindex=pod_index,
                state=0x80,  # PERMANENT
            )
        ipr.link("set", index=host_index, state="up")
        ipr.route("replace", dst=f"{address}/32", oif=host_index, scope=253)
        ipr.neigh("replace", dst=address, lladdr=pod_mac, ifindex=host_index, state=0x80)
    except NetlinkError as exc:
        raise LinkError(f"configuring {ifname} in {netns}: {exc}") from exc
    return EndpointLink(host_ifname, host_mac, ifname, pod_mac, host_index)


def _delete_quietly(ipr: IPRoute, host_ifname: str) -> None:
    with contextlib.suppress(NetlinkError):
        ipr.link("del", ifname=host_ifname)


def delete_endpoint_link(host_ifname: str) -> bool:
    """Remove the pod's veth pair (its peer and routes go with it). False if it was gone."""
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=host_ifname):
            return False
        try:
            ipr.link("del", ifname=host_ifname)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise LinkError(f"deleting {host_ifname}: {exc}") from exc
        return True


def endpoint_link_problems(*, netns: str, ifname: str, host_ifname: str, address: str) -> list[str]:
    """What CHECK finds wrong with an endpoint's devices (empty when all is as created)."""
    problems: list[str] = []
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=host_ifname):
            problems.append(f"host device {host_ifname} is missing")
    if not os.path.exists(netns):
        return [*problems, f"netns {netns} does not exist"]
    with netlink_in(netns) as pod:
        found = pod.link_lookup(ifname=ifname)
        if not found:
            return [*problems, f"{ifname} is missing in {netns}"]
        addrs = {a.get("IFA_ADDRESS") for a in pod.get_addr(index=found[0], family=2)}
        if address not in addrs:
            problems.append(f"{ifname} in {netns} does not hold {address}")
    return problems


def host_links(prefix: str = HOST_IF_PREFIX) -> list[str]:
    with IPRoute() as ipr:
        names = [str(link.get("IFLA_IFNAME")) for link in ipr.get_links()]
    return [n for n in names if n.startswith(prefix)]


def replace_route(dst: str, gateway: str) -> None:
    with IPRoute() as ipr:
        ipr.route("replace", dst=dst, gateway=gateway)


def delete_route(dst: str) -> None:
    with IPRoute() as ipr:
        try:
            ipr.route("del", dst=dst)
        except NetlinkError as exc:
            if exc.code != errno.ESRCH:
                raise
