"""In-memory twin of the Linux datapath, for control-plane tests without root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from axoneme.datapath.types import IPCacheEntry, LxcEntry
from axoneme.endpoint.types import LinkInfo
from axoneme.policy.mapstate import MapState


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
        return LinkInfo(
            host_mac="02:00:00:00:00:01",
            pod_mac="02:00:00:00:00:02",
            host_ifindex=100 + len(self.links),
        )

    def delete(self, host_ifname: str) -> bool:
        return self.links.pop(host_ifname, None) is not None

    def problems(self, *, netns: str, ifname: str, host_ifname: str, address: str) -> list[str]:
        link = self.links.get(host_ifname)
        if link is None:
            return [f"host device {host_ifname} is missing"]
        return [] if link.address == address else [f"{ifname} does not hold {address}"]

    def existing(self) -> list[str]:
        return list(self.links)


@dataclass
class FakeDatapath:
    """The agent's DatapathPort in memory: what would be in the maps, and what is attached."""

    attached: set[int] = field(default_factory=set)
    lxc: dict[int, LxcEntry] = field(default_factory=dict)
    ipcache: dict[str, IPCacheEntry] = field(default_factory=dict)
    policy: MapState = field(default_factory=MapState)

    def attach(self, ifindex: int) -> None:
        self.attached.add(ifindex)

    def set_endpoint(self, ifindex: int, entry: LxcEntry) -> None:
        self.lxc[ifindex] = entry

    def delete_endpoint(self, ifindex: int) -> None:
        self.lxc.pop(ifindex, None)
        self.attached.discard(ifindex)

    def endpoints(self) -> dict[int, LxcEntry]:
        return dict(self.lxc)

    def sync_ipcache(self, desired: Mapping[str, IPCacheEntry]) -> int:
        changes = len(set(desired.items()) ^ set(self.ipcache.items()))
        self.ipcache = dict(desired)
        return changes

    def sync_policy(self, state: MapState) -> int:
        changes = int(state != self.policy)
        self.policy = state
        return changes
