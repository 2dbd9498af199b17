"""What the endpoint manager needs from the datapath and from the resource store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LinkInfo:
    host_mac: str
    pod_mac: str
    host_ifindex: int = 0


class LinkDriver(Protocol):
    def create(
        self, *, netns: str, ifname: str, host_ifname: str, address: str, router_ip: str
    ) -> LinkInfo: ...

    def delete(self, host_ifname: str) -> bool: ...

    def problems(self, *, netns: str, ifname: str, host_ifname: str, address: str) -> list[str]: ...

    def existing(self) -> list[str]:
        """Host device names this driver owns on the node."""
        ...
