"""Typed, validated views of v1 Service and discovery.k8s.io/v1 EndpointSlice.

Same contract as :mod:`axoneme.k8s.objects`: ``parse_*`` takes the raw JSON
and returns a frozen value or raises ValidationError naming the field path
(``spec.ports[1].targetPort``). The checks are the API server's, restricted
to what Axoneme serves: IPv4, and the types ClusterIP, NodePort and
LoadBalancer (ExternalName is refused with a clear message, not ignored).
"""

from __future__ import annotations

import ipaddress
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
from axoneme.k8s.objects import (
    DEFAULT_NAMESPACE,
    PROTOCOLS,
    Protocol,
    field_list,
    field_object,
)

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "NODE_PORT_RANGE",
    "SERVICE_NAME_LABEL",
    "Endpoint",
    "EndpointSlice",
    "Service",
    "ServicePort",
    "SlicePort",
    "needs_health_check_node_port",
    "parse_endpointslice",
    "parse_service",
]

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
TrafficPolicy = Literal["Cluster", "Local"]
SERVICE_TYPES: tuple[ServiceType, ...] = ("ClusterIP", "NodePort", "LoadBalancer")
# Kubernetes' default (3 hours) and ceiling (1 day) for ClientIP affinity.
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400
# The API server's default --service-node-port-range.
NODE_PORT_RANGE = (30000, 32767)
# The label that ties an EndpointSlice to its Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADLESS = "None"


@dataclass(frozen=True)
class ServicePort:
    name: str
    protocol: Protocol
    port: int
    target_port: int | str  # a number, or a container port's name
    node_port: int = 0  # 0: none (ClusterIP) or not allocated yet


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: ServiceType
    ports: tuple[ServicePort, ...]
    selector: dict[str, str] | None  # None: no selector, the user supplies EndpointSlices
    cluster_ip: str = ""  # "" until allocated, "None" when headless
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str = ""  # spec.loadBalancerIP, a request
    load_balancer_ingress: tuple[str, ...] = ()  # status.loadBalancer.ingress[*].ip
    session_affinity: Literal["None", "ClientIP"] = "None"
    affinity_timeout: int = DEFAULT_AFFINITY_TIMEOUT
    external_traffic_policy: TrafficPolicy = "Cluster"
    internal_traffic_policy: TrafficPolicy = "Cluster"
    # spec.healthCheckNodePort: where each node answers whether it has a ready
    # local backend (LoadBalancer + externalTrafficPolicy Local only; 0: none yet).
    health_check_node_port: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip == HEADLESS

    @property
    def needs_health_check_node_port(self) -> bool:
        return needs_health_check_node_port(self.type, self.external_traffic_policy)


@dataclass(frozen=True)
class SlicePort:
    name: str
    protocol: Protocol
    port: int


@dataclass(frozen=True)
class Endpoint:
    address: str
    # Kubernetes' nil-means rules are applied here: ready unset means ready,
    # serving unset means "same as ready", terminating unset means not.
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    target_pod: str = ""  # "namespace/name" of a targetRef of kind Pod


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str  # the kubernetes.io/service-name label; "" ties it to nothing
    endpoints: tuple[Endpoint, ...]
    ports: tuple[SlicePort, ...]
    labels: dict[str, str] = field(default_factory=dict)


def _ipv4(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, f"must be an IPv4 address, not {value!r}")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValidationError(path, f"{value!r} is not an IP address") from exc
    if ip.version != 4:
        raise ValidationError(path, f"{value!r}: only IPv4 is supported")
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast:
        raise ValidationError(path, f"{value!r} may not be unspecified, loopback or multicast")
    return value


def _protocol(path: str, value: Any) -> Protocol:
    proto = "TCP" if value is None else value
    for p in PROTOCOLS:
        if proto == p:
            return p
    raise ValidationError(path, f"{proto!r} is not one of TCP, UDP, SCTP")


def _meta(raw: dict[str, Any], kind: str, api_version: str) -> tuple[str, str, dict[str, Any]]:
    if raw.get("apiVersion") != api_version:
        raise ValidationError("apiVersion", f"must be {api_version!r} for kind {kind}")
    if raw.get("kind") != kind:
        raise ValidationError("kind", f"must be {kind!r}")
    meta = field_object("metadata", raw.get("metadata"))
    if "name" not in meta:
        raise ValidationError("metadata.name", "required")
    # Service names are DNS labels (they become DNS names); slices are subdomains.
    name = (dns_label if kind == "Service" else dns_subdomain)("metadata.name", meta["name"])
    namespace = dns_label("metadata.namespace", meta.get("namespace", DEFAULT_NAMESPACE))
    return namespace, name, meta


def _target_port(path: str, value: Any, default: int) -> int | str:
    if value is None:
        return default
    if isinstance(value, str):
        if value.isdigit():
            return port_number(path, int(value))
        return port_name(path, value)
    return port_number(path, value)


def _service_ports(spec: dict[str, Any], svc_type: ServiceType) -> tuple[ServicePort, ...]:
    raw_ports = field_list("spec.ports", spec.get("ports"))
    ports: list[ServicePort] = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    for i, value in enumerate(raw_ports):
        path = f"spec.ports[{i}]"
        p = field_object(path, value)
        if "port" not in p:
            raise ValidationError(f"{path}.port", "required")
        number = port_number(f"{path}.port", p["port"])
        proto = _protocol(f"{path}.protocol", p.get("protocol"))
        name = ""
        if p.get("name"):
            name = dns_label(f"{path}.name", p["name"])
        elif len(raw_ports) > 1:
            raise ValidationError(f"{path}.name", "required when a service has several ports")
        if name in names:
            raise ValidationError(f"{path}.name", f"duplicate port name {name!r}")
        names.add(name)
        if (number, proto) in seen:
            raise ValidationError(f"{path}", f"duplicate port {number}/{proto}")
        seen.add((number, proto))
        node_port = 0
        if p.get("nodePort") is not None:
            if svc_type == "ClusterIP":
                raise ValidationError(
                    f"{path}.nodePort", "may not be used when spec.type is 'ClusterIP'"
                )
            node_port = port_number(f"{path}.nodePort", p["nodePort"])
            low, high = NODE_PORT_RANGE
            if not low <= node_port <= high:
                raise ValidationError(
                    f"{path}.nodePort", f"{node_port} is not in the node port range {low}-{high}"
                )
        target = _target_port(f"{path}.targetPort", p.get("targetPort"), number)
        ports.append(ServicePort(name, proto, number, target, node_port))
    used = [(p.node_port, p.protocol) for p in ports if p.node_port]
    if len(used) != len(set(used)):
        raise ValidationError("spec.ports", "the same nodePort and protocol are used twice")
    return tuple(ports)


def needs_health_check_node_port(svc_type: str, external_traffic_policy: str | None) -> bool:
    """Kubernetes gives a Service a health-check node port exactly when it is a
    LoadBalancer whose external traffic stays on the node it enters."""
    return svc_type == "LoadBalancer" and external_traffic_policy == "Local"


def _health_check_node_port(
    spec: dict[str, Any], svc_type: str, ports: tuple[ServicePort, ...]
) -> int:
    path = "spec.healthCheckNodePort"
    value = spec.get("healthCheckNodePort")
    if value is None or (type(value) is int and value == 0):
        return 0  # unset (Kubernetes' int32 zero value): allocated at apply when needed
    if not needs_health_check_node_port(svc_type, spec.get("externalTrafficPolicy")):
        raise ValidationError(
            path,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        )
    port = port_number(path, value)
    low, high = NODE_PORT_RANGE
    if not low <= port <= high:
        raise ValidationError(path, f"{port} is not in the node port range {low}-{high}")
    for i, p in enumerate(ports):
        if p.node_port == port:
            raise ValidationError(path, f"{port} is already spec.ports[{i}].nodePort")
    return port


def _policy(path: str, value: Any) -> TrafficPolicy:
    if value is None or value == "Cluster":
        return "Cluster"
    if value == "Local":
        return "Local"
    raise ValidationError(path, f"{value!r} is not Cluster or Local")


def parse_service(raw: dict[str, Any]) -> Service:
    namespace, name, meta = _meta(raw, "Service", "v1")
    spec = field_object("spec", raw.get("spec"))
    svc_type = spec.get("type", "ClusterIP")
    if svc_type == "ExternalName":
        raise ValidationError("spec.type", "ExternalName services are not supported by Axoneme")
    if svc_type not in SERVICE_TYPES:
        raise ValidationError(
            "spec.type", f"{svc_type!r} is not ClusterIP, NodePort or LoadBalancer"
        )
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != HEADLESS:
        _ipv4("spec.clusterIP", cluster_ip)
    for i, ip in enumerate(field_list("spec.clusterIPs", spec.get("clusterIPs"))):
        if i == 0 and cluster_ip and ip != cluster_ip:
            raise ValidationError("spec.clusterIPs[0]", "must equal spec.clusterIP")
        if i > 0:
            raise ValidationError("spec.clusterIPs", "only one (IPv4) cluster IP is supported")
    if cluster_ip == HEADLESS and svc_type != "ClusterIP":
        raise ValidationError("spec.clusterIP", f"may not be 'None' for type {svc_type}")
    ports = _service_ports(spec, svc_type)
    if not ports and cluster_ip != HEADLESS:
        raise ValidationError("spec.ports", "at least one port is required")
    selector: dict[str, str] | None = None
    if spec.get("selector") is not None:
        selector = label_map("spec.selector", spec["selector"]) or None
    external_ips = tuple(
        _ipv4(f"spec.externalIPs[{i}]", ip)
        for i, ip in enumerate(field_list("spec.externalIPs", spec.get("externalIPs")))
    )
    lb_ip = spec.get("loadBalancerIP") or ""
    if lb_ip:
        if svc_type != "LoadBalancer":
            raise ValidationError("spec.loadBalancerIP", "only for type LoadBalancer")
        _ipv4("spec.loadBalancerIP", lb_ip)
    raw_affinity = spec.get("sessionAffinity") or "None"
    if raw_affinity not in ("None", "ClientIP"):
        raise ValidationError("spec.sessionAffinity", f"{raw_affinity!r} is not None or ClientIP")
    affinity: Literal["None", "ClientIP"] = "ClientIP" if raw_affinity == "ClientIP" else "None"
    timeout = DEFAULT_AFFINITY_TIMEOUT
    config = field_object("spec.sessionAffinityConfig", spec.get("sessionAffinityConfig"))
    if config:
        if affinity != "ClientIP":
            raise ValidationError(
                "spec.sessionAffinityConfig", "only with spec.sessionAffinity: ClientIP"
            )
        client = field_object("spec.sessionAffinityConfig.clientIP", config.get("clientIP"))
        if client.get("timeoutSeconds") is not None:
            path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
            timeout = client["timeoutSeconds"]
            if isinstance(timeout, bool) or not isinstance(timeout, int):
                raise ValidationError(path, f"must be an integer, not {timeout!r}")
            if not 1 <= timeout <= MAX_AFFINITY_TIMEOUT:
                raise ValidationError(path, f"{timeout} is not in 1..{MAX_AFFINITY_TIMEOUT}")
    external = spec.get("externalTrafficPolicy")
    if external is not None and svc_type == "ClusterIP" and not external_ips:
        raise ValidationError(
            "spec.externalTrafficPolicy", "may only be set for externally-accessible services"
        )
    health_check_node_port = _health_check_node_port(spec, svc_type, ports)
    status = field_object("status", raw.get("status"))
    lb_status = field_object("status.loadBalancer", status.get("loadBalancer"))
    ingress = []
    for i, value in enumerate(field_list("status.loadBalancer.ingress", lb_status.get("ingress"))):
        entry = field_object(f"status.loadBalancer.ingress[{i}]", value)
        if entry.get("ip"):
            ingress.append(_ipv4(f"status.loadBalancer.ingress[{i}].ip", entry["ip"]))
    return Service(
        namespace=namespace,
        name=name,
        type=svc_type,
        ports=ports,
        selector=selector,
        cluster_ip=cluster_ip,
        external_ips=external_ips,
        load_balancer_ip=lb_ip,
        load_balancer_ingress=tuple(ingress),
        session_affinity=affinity,
        affinity_timeout=timeout,
        external_traffic_policy=_policy("spec.externalTrafficPolicy", external),
        internal_traffic_policy=_policy(
            "spec.internalTrafficPolicy", spec.get("internalTrafficPolicy")
        ),
        health_check_node_port=health_check_node_port,
        labels=label_map("metadata.labels", meta.get("labels")),
        annotations=string_map("metadata.annotations", meta.get("annotations")),
    )


def _condition(path: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(path, f"must be true or false, not {value!r}")
    return value


def _endpoint(path: str, value: Any) -> Endpoint:
    e = field_object(path, value)
    addresses = field_list(f"{path}.addresses", e.get("addresses"))
    if not addresses:
        raise ValidationError(f"{path}.addresses", "at least one address is required")
    if len(addresses) > 100:
        raise ValidationError(f"{path}.addresses", "at most 100 addresses")
    address = _ipv4(f"{path}.addresses[0]", addresses[0])
    for i, other in enumerate(addresses[1:], start=1):
        _ipv4(f"{path}.addresses[{i}]", other)
    cond = field_object(f"{path}.conditions", e.get("conditions"))
    ready = _condition(f"{path}.conditions.ready", cond.get("ready"), True)
    serving = _condition(f"{path}.conditions.serving", cond.get("serving"), ready)
    terminating = _condition(f"{path}.conditions.terminating", cond.get("terminating"), False)
    node_name = e.get("nodeName") or ""
    if node_name:
        dns_subdomain(f"{path}.nodeName", node_name)
    target_pod = ""
    ref = field_object(f"{path}.targetRef", e.get("targetRef"))
    if ref.get("kind") == "Pod" and ref.get("name"):
        ns = dns_label(f"{path}.targetRef.namespace", ref.get("namespace", DEFAULT_NAMESPACE))
        target_pod = f"{ns}/{dns_subdomain(f'{path}.targetRef.name', ref['name'])}"
    return Endpoint(address, ready, serving, terminating, node_name, target_pod)


def parse_endpointslice(raw: dict[str, Any]) -> EndpointSlice:
    namespace, name, meta = _meta(raw, "EndpointSlice", "discovery.k8s.io/v1")
    address_type = raw.get("addressType")
    if address_type is None:
        raise ValidationError("addressType", "required")
    if address_type != "IPv4":
        raise ValidationError("addressType", f"{address_type!r}: only IPv4 is supported")
    raw_endpoints = field_list("endpoints", raw.get("endpoints"))
    if len(raw_endpoints) > 1000:
        raise ValidationError("endpoints", "at most 1000 endpoints per slice")
    endpoints = tuple(_endpoint(f"endpoints[{i}]", e) for i, e in enumerate(raw_endpoints))
    ports: list[SlicePort] = []
    names: set[str] = set()
    for i, value in enumerate(field_list("ports", raw.get("ports"))):
        path = f"ports[{i}]"
        p = field_object(path, value)
        pname = p.get("name") or ""
        if pname:
            dns_label(f"{path}.name", pname)
        if pname in names:
            raise ValidationError(f"{path}.name", f"duplicate port name {pname!r}")
        names.add(pname)
        if p.get("port") is None:
            raise ValidationError(
                f"{path}.port", "required (Axoneme does not serve port-less slices)"
            )
        number = port_number(f"{path}.port", p["port"])
        ports.append(SlicePort(pname, _protocol(f"{path}.protocol", p.get("protocol")), number))
    labels = label_map("metadata.labels", meta.get("labels"))
    return EndpointSlice(
        namespace=namespace,
        name=name,
        service=labels.get(SERVICE_NAME_LABEL, ""),
        endpoints=endpoints,
        ports=tuple(ports),
        labels=labels,
    )
