"""The agent's request-serving core: CNI commands against the endpoint manager, and status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from axoneme.agent.cni import CODE_TRY_AGAIN, CNIRequest, CNIRequestError, add_result
from axoneme.agent.enforcement import Enforcement, EnforcementError
from axoneme.agent.metrics import observe_cni
from axoneme.endpoint.manager import EndpointError, EndpointManager, PodInfo
from axoneme.endpoint.model import Endpoint, attachment
from axoneme.ipam.pools import pool_for
from axoneme.k8s.objects import Namespace, Pod, parse_namespace, parse_pod
from axoneme.store.types import Key, Store, StoreError


@dataclass(frozen=True)
class PodContext:
    """What the store says about the pod a CNI request is for (None: not a Kubernetes pod)."""

    pod: Pod | None
    namespace: Namespace | None
    pool: str = ""  # multi-pool IPAM: from ipam.cilium.io/ip-pool on the pod or its namespace

    def info(self, identity: int | None) -> PodInfo:
        if self.pod is None:
            return PodInfo(identity=identity)
        return PodInfo(self.pod.namespace, self.pod.name, self.pod.labels, identity, self.pool)


class AgentService:
    def __init__(
        self,
        node: str,
        store: Store,
        manager: EndpointManager,
        pod_cidr: str,
        enforcement: Enforcement | None = None,
    ) -> None:
        self.node = node
        self.pod_cidr = pod_cidr
        self._store = store
        self._manager = manager
        self.enforcement = enforcement
        self.routing: dict[str, str] = {}  # set by the routing component (agent/routing.py)
        # Endpoint changes run one at a time in a worker thread: netlink calls
        # block, and the manager's state file must be written in order.
        self._lock = asyncio.Lock()
        self._started = time.monotonic()
        # The health checker's report (agent/health.py), while it runs.
        self.health: Callable[[], dict[str, Any]] | None = None
        # The last per-flow TCP retransmit reading (agent/tcpretrans.py), while it runs.
        self.tcp_retransmits: Callable[[], list[dict[str, Any]]] | None = None
        # The node lease's report (agent/nodelease.py), while it runs.
        self.node_lease: Callable[[], dict[str, Any]] | None = None
        # The service load balancer's report (agent/loadbalancer.py), while it runs.
        self.loadbalancer: Callable[[], dict[str, Any]] | None = None

    def endpoints(self) -> list[Endpoint]:
        return self._manager.endpoints()

    async def _pod_context(self, req: CNIRequest) -> PodContext:
        if not (req.pod_namespace and req.pod_name):
            return PodContext(None, None)  # not a Kubernetes pod (e.g. `ctr run --cni`)
        try:
            raw = await self._store.get(Key("Pod", req.pod_namespace, req.pod_name))
            raw_ns = await self._store.get(Key("Namespace", "", req.pod_namespace))
        except StoreError as exc:
            raise CNIRequestError(
                CODE_TRY_AGAIN, "the store is unreachable; retry", str(exc)
            ) from exc
        if raw is None:
            raise CNIRequestError(
                CODE_TRY_AGAIN,
                f"pod {req.pod_namespace}/{req.pod_name} is not in the store yet; retry",
            )
        pod = parse_pod(raw)
        ns_annotations = (raw_ns or {}).get("metadata", {}).get("annotations") or {}
        return PodContext(
            pod,
            parse_namespace(raw_ns) if raw_ns else None,
            pool_for(pod.annotations, ns_annotations if isinstance(ns_annotations, dict) else {}),
        )

    async def _add(self, req: CNIRequest) -> dict[str, Any]:
        context = await self._pod_context(req)
        enforcement = self.enforcement
        labels = identity = None
        if enforcement is not None:
            labels = enforcement.labels_for(context.pod, context.namespace)
            try:
                identity = await enforcement.allocate(labels)
            except EnforcementError as exc:
                raise CNIRequestError(CODE_TRY_AGAIN, str(exc)) from exc
        try:
            async with self._lock:
                ep = await asyncio.to_thread(
                    self._manager.add,
                    req.container_id,
                    req.ifname,
                    req.netns,
                    context.info(identity),
                )
        except BaseException:
            if enforcement is not None and labels is not None:
                await enforcement.release(labels)
            raise
        if enforcement is not None and labels is not None:
            try:
                await enforcement.endpoint_ready(ep, labels)
            except Exception as exc:
                # Undo the whole ADD: the runtime sees a failure and retries cleanly.
                async with self._lock:
                    await asyncio.to_thread(self._manager.delete, req.container_id, req.ifname)
                await enforcement.endpoint_removed(ep)
                raise CNIRequestError(
                    CODE_TRY_AGAIN, "cannot set up policy for the endpoint", str(exc)
                ) from exc
        return add_result(req, ep, self._manager.router_ip)

    async def _delete(self, container_id: str, ifname: str) -> None:
        async with self._lock:
            ep = await asyncio.to_thread(self._manager.delete, container_id, ifname)
        if ep is not None and self.enforcement is not None:
            await self.enforcement.endpoint_removed(ep)

    async def handle_cni(self, req: CNIRequest) -> dict[str, Any]:
        ok = False
        try:
            result = await self._handle_cni(req)
            ok = True
            return result
        finally:
            observe_cni(req.command, ok)

    async def _handle_cni(self, req: CNIRequest) -> dict[str, Any]:
        if req.command == "STATUS":
            return {}
        if req.command == "ADD":
            return await self._add(req)
        if req.command == "DEL":
            await self._delete(req.container_id, req.ifname)
            return {}
        if req.command == "CHECK":
            async with self._lock:
                problems = await asyncio.to_thread(
                    self._manager.check, req.container_id, req.ifname
                )
            if problems:
                raise EndpointError(111, "endpoint check failed", "; ".join(problems))
            return {}
        # GC: keep exactly the attachments the runtime still knows.
        valid = req.config.get("cni.dev/valid-attachments", [])
        if not isinstance(valid, list):
            raise CNIRequestError(7, "cni.dev/valid-attachments must be a list")
        keep = {
            attachment(str(a.get("containerID", "")), str(a.get("ifname", "")))
            for a in valid
            if isinstance(a, dict)
        }
        async with self._lock:
            removed = await asyncio.to_thread(self._manager.gc, keep)
        if self.enforcement is not None:
            for ep in removed:
                await self.enforcement.endpoint_removed(ep)
        return {}

    async def status(self) -> dict[str, Any]:
        try:
            store = await self._store.health()
        except StoreError as exc:
            store = f"Failure: {exc}"
        usage = self._manager.ipam.usage()
        endpoints = self._manager.endpoints()
        return {
            "node": self.node,
            "podCIDR": self.pod_cidr,
            "routerIP": self._manager.router_ip,
            "store": store,
            "ipam": {
                "allocated": usage.allocated,
                "capacity": usage.capacity,
                "cidr": usage.cidr,
                "summary": str(usage),
                "addresses": self._manager.ipam.snapshot()["allocations"],
            },
            "endpoints": {
                "total": len(endpoints),
                "ready": sum(e.state == "ready" for e in endpoints),
            },
            "uptimeSeconds": round(time.monotonic() - self._started, 1),
            "policy": self.policy_status(),
            "routing": self.routing,
            "health": self.health() if self.health is not None else None,
            "nodeLease": self.node_lease() if self.node_lease is not None else None,
            "kubeProxyReplacement": self.loadbalancer() if self.loadbalancer else None,
        }

    def endpoint_view(self) -> list[dict[str, Any]]:
        out = []
        for ep in self._manager.endpoints():
            view = ep.to_api()
            if self.enforcement is not None:
                view["policyEnforcement"] = self.enforcement.enforcement_of(ep.id)
            out.append(view)
        return out

    def policy_status(self) -> dict[str, Any]:
        e = self.enforcement
        if e is None:
            return {"enabled": False, "realizedRevision": 0}
        return {
            "enabled": True,
            "mode": e.mode,
            "audit": e.audit,
            "synced": e.synced.is_set(),
            "seenRevision": e.seen_revision,
            "realizedRevision": e.realized_revision,
            "regenerations": e.regenerations,
            "policies": len(e.policies),
            "invalidPolicies": {"/".join(k): v for k, v in e.policy_errors.items()},
            "identities": len(e.identities.all()),
        }
