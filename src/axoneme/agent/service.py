"""The agent's request-serving core: CNI commands against the endpoint manager, and status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from axoneme.agent.cni import CODE_TRY_AGAIN, CNIRequest, CNIRequestError, add_result
from axoneme.endpoint.manager import EndpointError, EndpointManager, PodInfo
from axoneme.endpoint.model import Endpoint, attachment
from axoneme.k8s.objects import parse_pod
from axoneme.store.types import Key, Store, StoreError


class AgentService:
    def __init__(self, node: str, store: Store, manager: EndpointManager, pod_cidr: str) -> None:
        self.node = node
        self.pod_cidr = pod_cidr
        self._store = store
        self._manager = manager
        # Endpoint changes run one at a time in a worker thread: netlink calls
        # block, and the manager's state file must be written in order.
        self._lock = asyncio.Lock()
        self._started = time.monotonic()

    def endpoints(self) -> list[Endpoint]:
        return self._manager.endpoints()

    async def _pod_info(self, req: CNIRequest) -> PodInfo:
        if not (req.pod_namespace and req.pod_name):
            return PodInfo()  # not a Kubernetes pod (e.g. `ctr run --cni`)
        try:
            raw = await self._store.get(Key("Pod", req.pod_namespace, req.pod_name))
        except StoreError as exc:
            raise CNIRequestError(
                CODE_TRY_AGAIN, "the store is unreachable; retry", str(exc)
            ) from exc
        if raw is None:
            return PodInfo(req.pod_namespace, req.pod_name, {})
        pod = parse_pod(raw)
        return PodInfo(pod.namespace, pod.name, pod.labels)

    async def handle_cni(self, req: CNIRequest) -> dict[str, Any]:
        if req.command == "STATUS":
            return {}
        if req.command == "ADD":
            pod = await self._pod_info(req)
            async with self._lock:
                ep = await asyncio.to_thread(
                    self._manager.add, req.container_id, req.ifname, req.netns, pod
                )
            return add_result(req, ep, self._manager.router_ip)
        if req.command == "DEL":
            async with self._lock:
                await asyncio.to_thread(self._manager.delete, req.container_id, req.ifname)
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
            await asyncio.to_thread(self._manager.gc, keep)
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
        }
