"""The store interface every consumer sees, and the values it passes around.

A resource is raw Kubernetes-shaped JSON (``dict``) that has already been
validated at the boundary (see ``axoneme.k8s``). The store only cares about
its key: kind, namespace and name. Revisions are store-wide and increase
monotonically (etcd's revision, or a counter in memory), so a consumer can
list, remember the revision, and watch from the one after it without gaps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Resource = dict[str, Any]

EventType = Literal["ADDED", "MODIFIED", "DELETED"]

# Kinds the store knows, with their plural (the key segment) and whether
# objects of that kind live in a namespace.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "Pod": ("pods", True),
    "NetworkPolicy": ("networkpolicies", True),
    "CiliumNetworkPolicy": ("ciliumnetworkpolicies", True),
    "CiliumClusterwideNetworkPolicy": ("ciliumclusterwidenetworkpolicies", False),
    "CiliumIdentity": ("ciliumidentities", False),
    "CiliumEndpoint": ("ciliumendpoints", True),
    "Service": ("services", True),
    "EndpointSlice": ("endpointslices", True),
    # Node-owned, written by each agent under its node lease (Cilium's kvstore
    # node entry): it exists exactly while the node's agent is alive.
    "ClusterNode": ("clusternodes", False),
    # Written by the operator: the node's pod CIDRs (cluster-pool / multi-pool IPAM).
    "CiliumNode": ("ciliumnodes", False),
    "CiliumPodIPPool": ("ciliumpodippools", False),
    # Leader election (coordination.k8s.io/v1 shape), held under the leader's lease.
    "Lease": ("leases", True),
}


class StoreError(Exception):
    """The store could not do what was asked (unreachable, conflict, ...)."""


class ConflictError(StoreError):
    """A create found the key taken, or an update found a newer revision."""


class LeaseNotFoundError(StoreError):
    """The lease expired or was revoked: grant a new one and write again."""


LeaseID = int


@dataclass(frozen=True)
class Key:
    kind: str
    namespace: str  # "" for cluster-scoped kinds
    name: str

    def path(self, prefix: str) -> str:
        plural, namespaced = KINDS[self.kind]
        if namespaced:
            return f"{prefix}/{plural}/{self.namespace}/{self.name}"
        return f"{prefix}/{plural}/{self.name}"

    @classmethod
    def of(cls, obj: Resource) -> Key:
        meta = obj.get("metadata", {})
        kind = obj["kind"]
        namespaced = KINDS[kind][1]
        return cls(kind, meta.get("namespace", "") if namespaced else "", meta["name"])

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def kind_prefix(prefix: str, kind: str, namespace: str | None = None) -> str:
    """The key prefix under which every object of ``kind`` (in ``namespace``) lives."""
    plural, namespaced = KINDS[kind]
    if namespaced and namespace:
        return f"{prefix}/{plural}/{namespace}/"
    return f"{prefix}/{plural}/"


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    object: Resource
    revision: int


@dataclass(frozen=True)
class Listing:
    items: list[Resource]
    revision: int


class Store(Protocol):
    """What the agent, the lab and the CLI need from a resource store."""

    async def get(self, key: Key) -> Resource | None: ...

    async def list(self, kind: str, namespace: str | None = None) -> Listing: ...

    async def create(self, obj: Resource, *, lease: LeaseID | None = None) -> Resource:
        """Store a new object; ConflictError if the key exists.

        With ``lease`` the object is deleted when the lease expires or is revoked.
        """
        ...

    async def put(
        self, obj: Resource, expect_revision: int | None = None, *, lease: LeaseID | None = None
    ) -> Resource:
        """Create or replace; with expect_revision, only if the stored one is that revision.

        A put replaces the lease too: without ``lease`` the object outlives any lease.
        """
        ...

    async def delete(self, key: Key) -> int | None:
        """Remove the object; the store revision of the deletion, or None if it was absent."""
        ...

    def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        """Events for ``kind`` after revision ``since``, until the iterator is closed."""
        ...

    async def list_all(self) -> Listing:
        """Every object of every kind, at one revision (one consistent snapshot)."""
        ...

    def watch_all(self, since: int) -> AsyncIterator[WatchEvent]:
        """Every event of every kind after ``since``, in revision order."""
        ...

    async def health(self) -> str:
        """A one-line health summary; raises StoreError when unhealthy."""
        ...

    async def grant(self, ttl: int) -> LeaseID:
        """A new lease that expires ``ttl`` seconds after its last keep-alive."""
        ...

    async def keepalive(self, lease: LeaseID) -> int:
        """Renew ``lease``; its TTL in seconds. LeaseNotFoundError if it is gone."""
        ...

    async def revoke(self, lease: LeaseID) -> None:
        """End ``lease`` now, deleting every object written with it (absent: no-op)."""
        ...

    async def close(self) -> None: ...
