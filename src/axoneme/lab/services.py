"""The lab's service controllers: EndpointSlices from selectors, LoadBalancer addresses.

What kube-controller-manager's EndpointSlice controller and a LoadBalancer
IPAM do in a cluster, run by the lab supervisor. Each pass reads Services,
Pods and EndpointSlices, computes the wanted slices
(:func:`axoneme.loadbalancer.endpointslices.desired_slices`) and writes only
the differences; slices it manages whose Service is gone are deleted. User
slices (without the managed-by label) are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

from axoneme.k8s.apply import new_object
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import Pod, parse_pod
from axoneme.k8s.service import Service, parse_service
from axoneme.lab.topology import LB_IP_POOL
from axoneme.loadbalancer.endpointslices import desired_slices, is_managed
from axoneme.store.informer import run_informer
from axoneme.store.types import ConflictError, Key, Resource, Store, StoreError, WatchEvent

log = logging.getLogger("axoneme.lab.services")

Obj = dict[str, Any]


def _content(obj: Obj) -> Obj:
    """What the controller decides about a slice: compared to skip no-op writes."""
    return {
        "labels": obj["metadata"].get("labels", {}),
        "endpoints": obj.get("endpoints", []),
        "ports": obj.get("ports", []),
    }


def lb_address(svc: Service, taken: set[str], pool: str = LB_IP_POOL) -> str | None:
    """The ingress address for a LoadBalancer service: the one it asks for, or the first free."""
    if svc.load_balancer_ip:
        return svc.load_balancer_ip if svc.load_balancer_ip not in taken else None
    for host in ipaddress.ip_network(pool).hosts():
        if str(host) not in taken:
            return str(host)
    return None


class ServiceControllers:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._services: dict[str, Resource] = {}
        self._pods: dict[str, Resource] = {}
        self._wake = asyncio.Event()

    def _sync(self, into: dict[str, Resource]) -> Any:
        async def on_sync(items: list[Resource]) -> None:
            into.clear()
            into.update({str(Key.of(o)): o for o in items})
            self._wake.set()

        async def on_event(event: WatchEvent) -> None:
            key = str(Key.of(event.object))
            if event.type == "DELETED":
                into.pop(key, None)
            else:
                into[key] = event.object
            self._wake.set()

        return on_sync, on_event

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for kind, into in (("Service", self._services), ("Pod", self._pods)):
                on_sync, on_event = self._sync(into)
                tg.create_task(run_informer(self._store, kind, on_sync, on_event), name=kind)
            tg.create_task(self._loop(), name="service-controllers")

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            self._wake.clear()
            try:
                await self.reconcile()
            except ConflictError:
                self._wake.set()  # someone wrote meanwhile: go again
            except StoreError as exc:
                log.warning("service controllers: %s", exc)
            except Exception:  # a controller bug must not take the whole lab down
                log.exception("service controllers failed; retrying")

    async def reconcile(self) -> None:
        services: list[Service] = []
        for raw in self._services.values():
            try:
                services.append(parse_service(raw))
            except ValidationError as exc:  # validated at apply; never crash on a stray one
                log.warning("%s: %s", Key.of(raw), exc)
        pods: list[Pod] = []
        for raw in self._pods.values():
            with contextlib.suppress(ValidationError):
                pods.append(parse_pod(raw))
        await self._assign_lb_addresses(services)
        want: dict[Key, Obj] = {}
        for svc in services:
            for obj in desired_slices(svc, pods):
                want[Key.of(obj)] = obj
        have = {
            Key.of(o): o for o in (await self._store.list("EndpointSlice")).items if is_managed(o)
        }
        for key, obj in want.items():
            current = have.get(key)
            if current is None:
                await self._store.create(new_object(obj))
            elif _content(current) != _content(obj):
                current = {**current, **{k: obj[k] for k in ("endpoints", "ports")}}
                current["metadata"] = {**current["metadata"], "labels": obj["metadata"]["labels"]}
                await self._store.put(
                    current, expect_revision=int(current["metadata"]["resourceVersion"])
                )
        for key in have.keys() - want.keys():
            await self._store.delete(key)

    async def _assign_lb_addresses(self, services: list[Service]) -> None:
        taken = {ip for s in services for ip in s.load_balancer_ingress}
        for svc in services:
            if svc.type != "LoadBalancer" or svc.load_balancer_ingress:
                continue
            ip = lb_address(svc, taken)
            raw = self._services.get(str(Key("Service", svc.namespace, svc.name)))
            if ip is None or raw is None:
                log.warning("service %s: no LoadBalancer address available", svc.ref)
                continue
            taken.add(ip)
            obj = {**raw, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
            await self._store.put(obj, expect_revision=int(raw["metadata"]["resourceVersion"]))
