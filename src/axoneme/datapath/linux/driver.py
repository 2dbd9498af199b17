"""The endpoint manager's LinkDriver on real netlink."""

from __future__ import annotations

from axoneme.datapath.linux import netdev
from axoneme.endpoint.types import LinkInfo


class NetlinkDriver:
    def __init__(self, mtu: int = 1500) -> None:
        self.mtu = mtu  # the pod's: 50 less than the underlay's in tunnel mode

    def create(
        self, *, netns: str, ifname: str, host_ifname: str, address: str, router_ip: str
    ) -> LinkInfo:
        link = netdev.create_endpoint_link(
            netns=netns,
            ifname=ifname,
            host_ifname=host_ifname,
            address=address,
            router_ip=router_ip,
            mtu=self.mtu,
        )
        return LinkInfo(
            host_mac=link.host_mac, pod_mac=link.pod_mac, host_ifindex=link.host_ifindex
        )

    def delete(self, host_ifname: str) -> bool:
        return netdev.delete_endpoint_link(host_ifname)

    def problems(self, *, netns: str, ifname: str, host_ifname: str, address: str) -> list[str]:
        return netdev.endpoint_link_problems(
            netns=netns, ifname=ifname, host_ifname=host_ifname, address=address
        )

    def existing(self) -> list[str]:
        return netdev.host_links()
