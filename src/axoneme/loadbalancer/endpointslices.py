"""The EndpointSlice controller's computation: Services and Pods in, slices out.

Pure, as Kubernetes' controller behaves for what the lab needs: for every
Service with a selector, the Pods in its namespace that match it and have an
IP become endpoints. Pods are grouped by the ports their service ports
resolve to (a named ``targetPort`` resolves per pod, and a pod without that
port name is left out of that group), one slice per group. Services without
a selector get no managed slices: their owners write them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from axoneme.k8s.objects import Pod
from axoneme.k8s.service import SERVICE_NAME_LABEL, Service

__all__ = ["MANAGED_BY", "MANAGED_BY_LABEL", "desired_slices", "is_managed"]

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"

Obj = dict[str, Any]
PortKey = tuple[tuple[str, str, int], ...]  # (name, protocol, resolved port) per service port


def is_managed(raw: Obj) -> bool:
    return bool(raw.get("metadata", {}).get("labels", {}).get(MANAGED_BY_LABEL) == MANAGED_BY)


def _resolve(svc: Service, pod: Pod) -> PortKey:
    out = []
    for sp in svc.ports:
        if isinstance(sp.target_port, int):
            out.append((sp.name, sp.protocol, sp.target_port))
            continue
        for cp in pod.ports:
            if cp.name == sp.target_port and cp.protocol == sp.protocol:
                out.append((sp.name, sp.protocol, cp.container_port))
                break
    return tuple(out)


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_endpoint(pod: Pod, terminating: bool) -> Obj:
    running = pod.phase == "Running"
    return {
        "addresses": [pod.pod_ip],
        "conditions": {
            "ready": running and not terminating,
            "serving": running,
            "terminating": terminating,
        },
        "nodeName": pod.node_name,
        "targetRef": {"kind": "Pod", "namespace": pod.namespace, "name": pod.name},
    }


def desired_slices(
    svc: Service,
    pods: Iterable[Pod],
    terminating: frozenset[str] = frozenset(),
    labels: Mapping[str, str] | None = None,
) -> list[Obj]:
    """The slices the controller keeps for ``svc``; ``terminating`` holds pod refs
    being deleted (their endpoints stay, marked terminating, until they go)."""
    if svc.selector is None or (svc.headless and not svc.ports):
        return []
    groups: dict[PortKey, list[Obj]] = {}
    for pod in sorted(pods, key=lambda p: p.ref):
        if pod.namespace != svc.namespace or not pod.pod_ip or pod.phase in ("Succeeded", "Failed"):
            continue
        if not _matches(svc.selector, pod.labels):
            continue
        key = _resolve(svc, pod)
        groups.setdefault(key, []).append(_pod_endpoint(pod, pod.ref in terminating))
    slices = []
    for key, endpoints in sorted(groups.items()):
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:5]
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc.name}-{digest}",
                    "namespace": svc.namespace,
                    "labels": {
                        **(labels or {}),
                        SERVICE_NAME_LABEL: svc.name,
                        MANAGED_BY_LABEL: MANAGED_BY,
                    },
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in key],
            }
        )
    return slices
