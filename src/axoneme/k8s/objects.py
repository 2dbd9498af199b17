"""Typed, validated views of the Kubernetes v1 objects the lab runs: Namespace, Pod, Node.

``parse_*`` takes raw JSON (as loaded from a manifest or the store) and returns
a frozen value or raises ValidationError naming the field. The raw object is
what the store keeps; these views are what the rest of the code reads.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.names import (
    dns_label,
    dns_subdomain,
    label_map,
    port_name,
    port_number,
    string_map,
)

Protocol = Literal["TCP", "UDP", "SCTP"]
PROTOCOLS: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    protocol: Protocol = "TCP"
    name: str = ""


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    node_name: str = ""
    service_account: str = "default"
    ports: tuple[ContainerPort, ...] = ()
    phase: str = "Pending"
    pod_ip: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Node:
    name: str
    pod_cidrs: tuple[str, ...]
    internal_ip: str
    labels: dict[str, str] = field(default_factory=dict)


def field_object(field_path: str, value: Any) -> dict[str, Any]:
    """An optional object field: {} when absent, else it must be a mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field_path, "must be an object")
    return value


def field_list(field_path: str, value: Any) -> list[Any]:
    """An optional list field: [] when absent, else it must be a list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(field_path, "must be a list")
    return value


def _meta(raw: dict[str, Any], namespaced: bool) -> tuple[str, str, dict[str, Any]]:
    meta = field_object("metadata", raw.get("metadata"))
    if "name" not in meta:
        raise ValidationError("metadata.name", "required")
    if namespaced:
        name = dns_subdomain("metadata.name", meta["name"])
        namespace = dns_label("metadata.namespace", meta.get("namespace", DEFAULT_NAMESPACE))
    else:
        name = dns_label("metadata.name", meta["name"])
        namespace = ""
    return namespace, name, meta


def _expect_kind(raw: dict[str, Any], kind: str, api_version: str) -> None:
    if raw.get("apiVersion") != api_version:
        raise ValidationError("apiVersion", f"must be {api_version!r} for kind {kind}")
    if raw.get("kind") != kind:
        raise ValidationError("kind", f"must be {kind!r}")


def parse_namespace(raw: dict[str, Any]) -> Namespace:
    _expect_kind(raw, "Namespace", "v1")
    _, name, meta = _meta(raw, namespaced=False)
    return Namespace(name, label_map("metadata.labels", meta.get("labels")))


def _parse_ports(raw_containers: list[Any]) -> tuple[ContainerPort, ...]:
    ports: list[ContainerPort] = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    for ci, container in enumerate(raw_containers):
        cpath = f"spec.containers[{ci}]"
        c = field_object(cpath, container)
        if not isinstance(c.get("name"), str):
            raise ValidationError(f"{cpath}.name", "required")
        dns_label(f"{cpath}.name", c["name"])
        if not isinstance(c.get("image"), str) or not c["image"]:
            raise ValidationError(f"{cpath}.image", "required")
        for pi, port in enumerate(field_list(f"{cpath}.ports", c.get("ports"))):
            ppath = f"{cpath}.ports[{pi}]"
            p = field_object(ppath, port)
            if "containerPort" not in p:
                raise ValidationError(f"{ppath}.containerPort", "required")
            number = port_number(f"{ppath}.containerPort", p["containerPort"])
            proto = p.get("protocol", "TCP")
            if proto not in PROTOCOLS:
                raise ValidationError(
                    f"{ppath}.protocol", f"{proto!r} is not one of TCP, UDP, SCTP"
                )
            name = ""
            if p.get("name") is not None:
                name = port_name(f"{ppath}.name", p["name"])
                if name in names:
                    raise ValidationError(f"{ppath}.name", f"duplicate port name {name!r}")
                names.add(name)
            if (number, proto) in seen:
                raise ValidationError(
                    f"{ppath}.containerPort", f"duplicate port {number}/{proto} in the pod"
                )
            seen.add((number, proto))
            ports.append(ContainerPort(number, proto, name))
    return tuple(ports)


def parse_pod(raw: dict[str, Any]) -> Pod:
    _expect_kind(raw, "Pod", "v1")
    namespace, name, meta = _meta(raw, namespaced=True)
    spec = field_object("spec", raw.get("spec"))
    containers = field_list("spec.containers", spec.get("containers"))
    if not containers:
        raise ValidationError("spec.containers", "at least one container is required")
    node_name = spec.get("nodeName", "")
    if node_name:
        dns_subdomain("spec.nodeName", node_name)
    sa = spec.get("serviceAccountName", "default") or "default"
    dns_subdomain("spec.serviceAccountName", sa)
    status = field_object("status", raw.get("status"))
    return Pod(
        namespace=namespace,
        name=name,
        labels=label_map("metadata.labels", meta.get("labels")),
        annotations=string_map("metadata.annotations", meta.get("annotations")),
        node_name=node_name,
        service_account=sa,
        ports=_parse_ports(containers),
        phase=str(status.get("phase", "Pending")),
        pod_ip=str(status.get("podIP", "")),
    )


def parse_node(raw: dict[str, Any]) -> Node:
    _expect_kind(raw, "Node", "v1")
    _, name, meta = _meta(raw, namespaced=False)
    spec = field_object("spec", raw.get("spec"))
    cidrs = field_list("spec.podCIDRs", spec.get("podCIDRs")) or (
        [spec["podCIDR"]] if spec.get("podCIDR") else []
    )
    for i, cidr in enumerate(cidrs):
        try:
            ipaddress.ip_network(cidr)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"spec.podCIDRs[{i}]", f"{cidr!r} is not a CIDR") from exc
    internal = ""
    for i, addr in enumerate(
        field_list("status.addresses", field_object("status", raw.get("status")).get("addresses"))
    ):
        a = field_object(f"status.addresses[{i}]", addr)
        if a.get("type") == "InternalIP":
            internal = str(a.get("address", ""))
    return Node(name, tuple(cidrs), internal, label_map("metadata.labels", meta.get("labels")))


def _parse_policy(raw: dict[str, Any]) -> object:
    # Imported here: the policy parser builds on axoneme.k8s, not the reverse.
    from axoneme.policy.parse import parse_policy

    return parse_policy(raw)


def _parse_service(raw: dict[str, Any]) -> object:
    from axoneme.k8s.service import parse_service

    return parse_service(raw)


def _parse_endpointslice(raw: dict[str, Any]) -> object:
    from axoneme.k8s.service import parse_endpointslice

    return parse_endpointslice(raw)


PARSERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "Namespace": parse_namespace,
    "Pod": parse_pod,
    "Node": parse_node,
    "NetworkPolicy": _parse_policy,
    "CiliumNetworkPolicy": _parse_policy,
    "CiliumClusterwideNetworkPolicy": _parse_policy,
    "Service": _parse_service,
    "EndpointSlice": _parse_endpointslice,
}
_NAMESPACED = ("Pod", "NetworkPolicy", "CiliumNetworkPolicy", "Service", "EndpointSlice")


def validate(raw: Any) -> dict[str, Any]:
    """Check one object of a known kind; returns it normalised (namespace defaulted)."""
    if not isinstance(raw, dict):
        raise ValidationError("(document)", "must be an object")
    kind = raw.get("kind")
    if kind not in PARSERS:
        raise ValidationError("kind", f"{kind!r} is not a supported kind ({', '.join(PARSERS)})")
    PARSERS[kind](raw)
    obj = dict(raw)
    meta = dict(obj.get("metadata") or {})
    if kind in _NAMESPACED:
        meta.setdefault("namespace", DEFAULT_NAMESPACE)
    obj["metadata"] = meta
    return obj
