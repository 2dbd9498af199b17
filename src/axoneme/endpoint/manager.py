"""Endpoint lifecycle on one node: ADD, DEL, CHECK, GC, and restore after a restart.

The manager owns the node's IPAM allocator and the endpoint table, and
persists both in one state file with every change, so an agent killed at any
point restarts with exactly the addresses its pods hold. An ADD is recorded
as ``creating`` before any device exists; a restart that finds a ``creating``
endpoint undoes it (the runtime never saw success, so it retries or DELs).

Synchronous, and safe to call from several threads: every public operation
holds the manager's lock (the agent calls it from worker threads and its loop).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from axoneme.endpoint.model import Endpoint, State, attachment, host_ifname_for
from axoneme.endpoint.types import LinkDriver
from axoneme.ipam.hostscope import Allocator, IPAddress, IPAMError, PoolExhaustedError
from axoneme.ipam.pools import DEFAULT_POOL
from axoneme.kit.files import atomic_write_text

log = logging.getLogger(__name__)

MAX_ENDPOINT_ID = 0xFFFF  # Cilium's endpoint IDs are 16-bit


class EndpointError(Exception):
    """An endpoint operation failed; ``code`` is the CNI error code to report."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg if not details else f"{msg}: {details}")
        self.code = code
        self.msg = msg
        self.details = details


# Plugin-specific CNI codes (the spec leaves 100+ to plugins).
CODE_IPAM_EXHAUSTED = 110
CODE_LINK_FAILED = 111
CODE_STATE_FAILED = 112
CODE_CONTAINER_UNKNOWN = 3


@dataclass(frozen=True)
class PodInfo:
    namespace: str = ""
    name: str = ""
    labels: dict[str, str] | None = None
    identity: int | None = None
    pool: str = ""  # multi-pool IPAM: the pod's ip-pool ("" or "default": the node's pod CIDR)


P = ParamSpec("P")
R = TypeVar("R")


def _locked(
    method: Callable[Concatenate[EndpointManager, P], R],
) -> Callable[Concatenate[EndpointManager, P], R]:
    def wrapper(self: EndpointManager, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    wrapper.__doc__ = method.__doc__
    wrapper.__name__ = method.__name__
    return wrapper


class EndpointManager:
    def __init__(self, state_file: Path, pod_cidr: str, driver: LinkDriver) -> None:
        self._lock = threading.RLock()
        self._file = state_file
        self._driver = driver
        data = json.loads(state_file.read_text()) if state_file.exists() else {}
        # Raises CIDRMismatchError with a clean-up hint if the node's CIDR changed under us.
        self.ipam = Allocator.restore(data.get("ipam", {}), pod_cidr, str(state_file))
        # Multi-pool IPAM: the node's share of each named pool, known once the
        # CiliumNode is read (set_pools); saved snapshots wait for it meanwhile.
        self.pools: dict[str, Allocator] = {}
        self._saved_pools: dict[str, Any] = dict(data.get("pools", {}))
        self._endpoints: dict[str, Endpoint] = {
            ep.owner: ep for ep in (Endpoint.from_json(e) for e in data.get("endpoints", []))
        }

    @property
    def router_ip(self) -> str:
        return str(self.ipam.router)

    @_locked
    def endpoints(self) -> list[Endpoint]:
        return sorted(self._endpoints.values(), key=lambda e: e.id)

    def get(self, container_id: str, ifname: str) -> Endpoint | None:
        return self._endpoints.get(attachment(container_id, ifname))

    def _save(self) -> None:
        data: dict[str, Any] = {
            "ipam": self.ipam.snapshot(),
            "pools": {**self._saved_pools, **{n: a.snapshot() for n, a in self.pools.items()}},
            "endpoints": [e.to_json() for e in self.endpoints()],
        }
        try:
            atomic_write_text(self._file, json.dumps(data, indent=1))
        except OSError as exc:
            raise EndpointError(
                CODE_STATE_FAILED, "cannot persist endpoint state", str(exc)
            ) from exc

    def _next_id(self) -> int:
        used = {e.id for e in self._endpoints.values()}
        for candidate in range(1, MAX_ENDPOINT_ID + 1):
            if candidate not in used:
                return candidate
        raise EndpointError(CODE_STATE_FAILED, "no free endpoint ID on this node")

    @_locked
    def restore(self) -> list[str]:
        """Undo half-done ADDs and remove devices no endpoint owns; returns what it did."""
        actions: list[str] = []
        for ep in list(self._endpoints.values()):
            if ep.state == "creating":
                self._driver.delete(ep.host_ifname)
                self._release(ep.owner)
                del self._endpoints[ep.owner]
                actions.append(f"undid unfinished ADD of {ep.owner} ({ep.ipv4})")
        owners = {e.owner for e in self._endpoints.values()}
        for ip_owner in [
            o for o in self.ipam.snapshot()["allocations"].values() if o not in owners
        ]:
            self.ipam.release(ip_owner)
            actions.append(f"released address of unknown attachment {ip_owner}")
        known = {e.host_ifname for e in self._endpoints.values()}
        for name in self._driver.existing():
            if name not in known:
                self._driver.delete(name)
                actions.append(f"deleted orphan device {name}")
        for ep in list(self._endpoints.values()):
            problems = self._driver.problems(
                netns=ep.netns, ifname=ep.ifname, host_ifname=ep.host_ifname, address=ep.ipv4
            )
            state: State = "not-ready" if problems else "ready"
            if state != ep.state:
                self._endpoints[ep.owner] = ep.with_state(state)
                actions.append(f"endpoint {ep.id} is {state}: {'; '.join(problems)}")
        self._save()
        return actions

    def _allocator_for(self, pool: str) -> Allocator:
        if pool in ("", DEFAULT_POOL):
            return self.ipam
        found = self.pools.get(pool)
        if found is None:
            raise EndpointError(
                CODE_IPAM_EXHAUSTED,
                f"IP pool {pool!r} has no CIDR on this node",
                "the pod (or its namespace) asks for it with ipam.cilium.io/ip-pool; the "
                "operator gives each node a share of every CiliumPodIPPool in its CiliumNode "
                f"(spec.ipam.pools.allocated); known here: {sorted(self.pools) or 'none'}",
            )
        return found

    def _release(self, owner: str) -> IPAddress | None:
        for allocator in (self.ipam, *self.pools.values()):
            ip = allocator.release(owner)
            if ip is not None:
                return ip
        return None

    @_locked
    def set_pools(self, cidrs: dict[str, str]) -> list[str]:
        """Take the node's share of each pool (name → CIDR); returns what it could not do.

        A pool whose CIDR changed while addresses are in use keeps its old
        range (with the re-install message naming the state file), and a
        pool that went away is kept until its last address is released.
        """
        problems: list[str] = []
        for name, cidr in sorted(cidrs.items()):
            current = self.pools.get(name)
            if current is not None and str(current.cidr) == cidr:
                continue
            snapshot = current.snapshot() if current else self._saved_pools.get(name, {})
            try:
                allocator = Allocator.restore(snapshot, cidr, f"{self._file} (pool {name})")
            except IPAMError as exc:
                problems.append(str(exc))
                continue
            for owner in set(allocator.snapshot()["allocations"].values()) - set(self._endpoints):
                allocator.release(owner)  # an ADD undone by restore() before the pool was known
            self.pools[name] = allocator
            self._saved_pools.pop(name, None)
        for name in [n for n in self.pools if n not in cidrs]:
            if not self.pools[name].snapshot()["allocations"]:
                del self.pools[name]
        self._save()
        return problems

    @_locked
    def add(self, container_id: str, ifname: str, netns: str, pod: PodInfo) -> Endpoint:
        owner = attachment(container_id, ifname)
        existing = self._endpoints.get(owner)
        if existing is not None:
            if existing.netns == netns and existing.state == "ready":
                return existing  # a repeated ADD of the same attachment is answered, not redone
            raise EndpointError(
                CODE_STATE_FAILED,
                f"container {container_id} already has interface {ifname}",
                f"endpoint {existing.id} in {existing.netns}",
            )
        try:
            ip = self._allocator_for(pod.pool).allocate(owner)
        except PoolExhaustedError as exc:
            raise EndpointError(CODE_IPAM_EXHAUSTED, "unable to allocate IP", str(exc)) from exc
        except IPAMError as exc:
            raise EndpointError(CODE_IPAM_EXHAUSTED, "unable to allocate IP", str(exc)) from exc
        ep = Endpoint(
            id=self._next_id(),
            container_id=container_id,
            ifname=ifname,
            netns=netns,
            host_ifname=host_ifname_for(container_id, ifname),
            ipv4=str(ip),
            namespace=pod.namespace,
            pod=pod.name,
            labels=dict(pod.labels or {}),
            identity=pod.identity,
            state="creating",
        )
        self._endpoints[owner] = ep
        try:
            self._save()
            info = self._driver.create(
                netns=netns,
                ifname=ifname,
                host_ifname=ep.host_ifname,
                address=ep.ipv4,
                router_ip=self.router_ip,
            )
        except Exception as exc:
            self._endpoints.pop(owner, None)
            self._release(owner)
            self._save()
            if isinstance(exc, EndpointError):
                raise
            raise EndpointError(
                CODE_LINK_FAILED, "cannot create the pod's interface", str(exc)
            ) from exc
        ep = replace(
            ep,
            host_mac=info.host_mac,
            pod_mac=info.pod_mac,
            host_ifindex=info.host_ifindex,
            state="ready",
        )
        self._endpoints[owner] = ep
        self._save()
        return ep

    @_locked
    def delete(self, container_id: str, ifname: str) -> Endpoint | None:
        """Remove an attachment; unknown ones are fine (DEL is idempotent)."""
        owner = attachment(container_id, ifname)
        ep = self._endpoints.get(owner)
        if ep is None:
            # Still release an address a crashed ADD may have left under this owner.
            if self._release(owner) is not None:
                self._save()
            return None
        self._driver.delete(ep.host_ifname)
        del self._endpoints[owner]
        self._release(owner)
        self._save()
        return ep

    @_locked
    def set_identity(
        self, container_id: str, ifname: str, identity: int, labels: dict[str, str]
    ) -> Endpoint | None:
        """Record a new identity (the pod's labels changed); persisted at once."""
        owner = attachment(container_id, ifname)
        ep = self._endpoints.get(owner)
        if ep is None:
            return None
        ep = replace(ep, identity=identity, labels=dict(labels))
        self._endpoints[owner] = ep
        self._save()
        return ep

    @_locked
    def check(self, container_id: str, ifname: str) -> list[str]:
        ep = self._endpoints.get(attachment(container_id, ifname))
        if ep is None:
            raise EndpointError(
                CODE_CONTAINER_UNKNOWN, f"no endpoint for container {container_id} {ifname}"
            )
        return self._driver.problems(
            netns=ep.netns, ifname=ep.ifname, host_ifname=ep.host_ifname, address=ep.ipv4
        )

    @_locked
    def gc(self, valid: set[str]) -> list[Endpoint]:
        """Delete every attachment not in ``valid`` (CNI GC's cni.dev/valid-attachments)."""
        removed = []
        for owner, ep in list(self._endpoints.items()):
            if owner not in valid:
                self._driver.delete(ep.host_ifname)
                del self._endpoints[owner]
                self._release(owner)
                removed.append(ep)
        if removed:
            self._save()
        return removed
