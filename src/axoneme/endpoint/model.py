"""The endpoint value and its on-disk form."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

State = Literal["creating", "ready", "not-ready"]


@dataclass(frozen=True)
class Endpoint:
    id: int
    container_id: str
    ifname: str
    netns: str
    host_ifname: str
    ipv4: str
    namespace: str = ""
    pod: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    host_mac: str = ""
    pod_mac: str = ""
    ipv6: str | None = None
    identity: int | None = None
    state: State = "ready"
    host_ifindex: int = 0

    @property
    def owner(self) -> str:
        """The IPAM owner string: one attachment of one container."""
        return attachment(self.container_id, self.ifname)

    def with_state(self, state: State) -> Endpoint:
        return replace(self, state=state)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "containerId": self.container_id,
            "ifname": self.ifname,
            "netns": self.netns,
            "hostIfname": self.host_ifname,
            "ipv4": self.ipv4,
            "ipv6": self.ipv6,
            "namespace": self.namespace,
            "pod": self.pod,
            "labels": dict(self.labels),
            "identity": self.identity,
            "state": self.state,
            "hostIfindex": self.host_ifindex,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoint:
        return cls(**data)


def attachment(container_id: str, ifname: str) -> str:
    return f"{container_id}/{ifname}"


def host_ifname_for(container_id: str, ifname: str) -> str:
    """A stable, ≤15-character host device name for one attachment (``lxc`` + 12 hex)."""
    digest = hashlib.sha256(attachment(container_id, ifname).encode()).hexdigest()
    return f"lxc{digest[:12]}"
