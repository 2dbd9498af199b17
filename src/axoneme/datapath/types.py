"""What the control plane needs from the datapath: the Protocol the agent programs against.

``datapath.linux.writer.KernelDatapath`` implements it on pinned BPF maps and tc;
``datapath.fake.FakeDatapath`` in memory, for control-plane tests without root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from axoneme.policy.mapstate import MapState


@dataclass(frozen=True)
class LxcEntry:
    """The datapath's view of one local endpoint, keyed by its host-side ifindex."""

    ep_id: int
    identity: int
    ipv4: str
    flags: int
    mac: str  # the pod's
    host_mac: str = ""  # the host-side veth's (local delivery rewrites to these two)


@dataclass(frozen=True)
class IPCacheEntry:
    identity: int
    tunnel_ip: str = "0.0.0.0"


class DatapathPort(Protocol):
    def attach(self, ifindex: int) -> None:
        """Attach the endpoint programs to a host-side pod device (idempotent)."""
        ...

    def set_endpoint(self, ifindex: int, entry: LxcEntry) -> None: ...

    def delete_endpoint(self, ifindex: int) -> None: ...

    def endpoints(self) -> dict[int, LxcEntry]: ...

    def sync_ipcache(self, desired: Mapping[str, IPCacheEntry]) -> int:
        """Make the ipcache hold exactly ``desired`` (prefix → entry); returns changes made."""
        ...

    def sync_policy(self, state: MapState) -> int:
        """Make the policy maps hold exactly ``state``; returns changes made."""
        ...
