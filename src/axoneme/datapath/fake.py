"""In-memory twin of the Linux datapath, for control-plane tests without root."""

from __future__ import annotations

from dataclasses import dataclass, field

from axoneme.endpoint.types import LinkInfo


@dataclass
class FakeLink:
    netns: str
    ifname: str
    address: str
    router_ip: str


@dataclass
class FakeDriver:
    links: dict[str, FakeLink] = field(default_factory=dict)
    fail_create: str | None = None  # an error message to raise on the next create

    def create(
        self, *, netns: str, ifname: str, host_ifname: str, address: str, router_ip: str
    ) -> LinkInfo:
        if self.fail_create is not None:
            message, self.fail_create = self.fail_create, None
            raise OSError(message)
        if host_ifname in self.links:
            raise OSError(f"device {host_ifname} exists")
        self.links[host_ifname] = FakeLink(netns, ifname, address, router_ip)
        return LinkInfo(host_mac="02:00:00:00:00:01", pod_mac="02:00:00:00:00:02")

    def delete(self, host_ifname: str) -> bool:
        return self.links.pop(host_ifname, None) is not None

    def problems(self, *, netns: str, ifname: str, host_ifname: str, address: str) -> list[str]:
        link = self.links.get(host_ifname)
        if link is None:
            return [f"host device {host_ifname} is missing"]
        return [] if link.address == address else [f"{ifname} does not hold {address}"]

    def existing(self) -> list[str]:
        return list(self.links)
