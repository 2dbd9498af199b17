"""What the API server fills in on a Service: its cluster IP, node ports and
health-check node port.

Pure: given the Service being applied, what is stored under its key (if
anything) and every other stored Service, return the object to store with
``spec.clusterIP``/``clusterIPs``, ``nodePort`` and ``healthCheckNodePort``
set, or raise ValidationError naming the field (an address outside the
service CIDR or taken, a port taken, a change to an immutable cluster IP or
health-check node port).

Node ports are taken per (number, protocol), since a TCP and a UDP frontend
of one number are different map entries. A health-check node port is a TCP
listener every node opens, and, as in Kubernetes (one allocator for both),
takes its number from every protocol: no node port of any service, and no
other health-check node port, may share it.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable
from typing import Any

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.service import HEADLESS, NODE_PORT_RANGE, needs_health_check_node_port

__all__ = ["DEFAULT_SERVICE_CIDR", "allocate_service"]

Obj = dict[str, Any]
# kube-apiserver's customary --service-cluster-ip-range.
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"


def _taken(others: Iterable[Obj]) -> tuple[set[str], set[tuple[int, str]], set[int]]:
    """Other services' cluster IPs, node ports (number, protocol) and health-check node ports."""
    ips: set[str] = set()
    ports: set[tuple[int, str]] = set()
    health: set[int] = set()
    for o in others:
        spec = o.get("spec", {})
        if spec.get("clusterIP"):
            ips.add(spec["clusterIP"])
        for p in spec.get("ports", []):
            if p.get("nodePort"):
                ports.add((p["nodePort"], p.get("protocol", "TCP")))
        if spec.get("healthCheckNodePort"):
            health.add(spec["healthCheckNodePort"])
    return ips, ports, health


def _needs_health_check(spec: Obj) -> bool:
    return needs_health_check_node_port(spec.get("type", ""), spec.get("externalTrafficPolicy"))


def _requested_health_check_port(
    want: int, stored: Obj | None, node_ports: set[tuple[int, str]], health: set[int]
) -> int:
    """The health-check node port the Service keeps or asked for (0: allocate one)."""
    old = (stored or {}).get("spec", {})
    had = (old.get("healthCheckNodePort") or 0) if _needs_health_check(old) else 0
    if had:
        if want and want != had:
            raise ValidationError("spec.healthCheckNodePort", f"field is immutable (it is {had})")
        return int(had)
    if want and (want in health or any(n == want for n, _ in node_ports)):
        raise ValidationError("spec.healthCheckNodePort", f"{want} is already allocated")
    return int(want)


def _cluster_ip(obj: Obj, stored: Obj | None, cidr: str, used: set[str]) -> str:
    spec = obj["spec"]
    want = spec.get("clusterIP") or ""
    had = (stored or {}).get("spec", {}).get("clusterIP") or ""
    if had:
        if want and want != had:
            raise ValidationError("spec.clusterIP", f"field is immutable (it is {had})")
        return str(had)
    if want == HEADLESS:
        return HEADLESS
    net = ipaddress.ip_network(cidr)
    if want:
        if ipaddress.ip_address(want) not in net:
            raise ValidationError("spec.clusterIP", f"{want} is not in the service CIDR {cidr}")
        if want in used:
            raise ValidationError("spec.clusterIP", f"{want} is already allocated")
        return str(want)
    # .1 is customarily the kubernetes service; start the search after it.
    for host in net.hosts():
        ip = str(host)
        if host != net.network_address + 1 and ip not in used:
            return ip
    raise ValidationError("spec.clusterIP", f"the service CIDR {cidr} is full")


def allocate_service(
    obj: Obj, stored: Obj | None, others: Iterable[Obj], cidr: str = DEFAULT_SERVICE_CIDR
) -> Obj:
    """``obj`` (validated) with its cluster IP, node ports and health-check node port."""
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    used_ips, used_ports, used_health = _taken(others)
    ip = _cluster_ip(out, stored, cidr, used_ips)
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return out
    # Leaving LoadBalancer + Local releases the health-check node port; a port
    # kept or asked for is held before node ports are chosen, so none takes it.
    want = spec.pop("healthCheckNodePort", None) or 0
    health = 0
    if _needs_health_check(spec):
        health = _requested_health_check_port(want, stored, used_ports, used_health)
        if health:
            used_health.add(health)
    # A port keeps the node port it had, matched by (port, protocol).
    had = {
        (p["port"], p.get("protocol", "TCP")): p["nodePort"]
        for p in (stored or {}).get("spec", {}).get("ports", [])
        if p.get("nodePort")
    }
    free = (n for n in range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1))
    for i, port in enumerate(spec.get("ports", [])):
        proto = port.get("protocol", "TCP")
        if port.get("nodePort"):
            if (port["nodePort"], proto) in used_ports or port["nodePort"] in used_health:
                raise ValidationError(
                    f"spec.ports[{i}].nodePort", f"{port['nodePort']} is already allocated"
                )
        elif (port["port"], proto) in had:
            port["nodePort"] = had[(port["port"], proto)]
            if port["nodePort"] == health:  # the port it had was asked for as the health check's
                raise ValidationError(
                    "spec.healthCheckNodePort", f"{health} is already spec.ports[{i}].nodePort"
                )
        else:
            for n in free:
                if (n, proto) not in used_ports and n not in used_health:
                    port["nodePort"] = n
                    break
            else:
                raise ValidationError(f"spec.ports[{i}].nodePort", "no free node port")
        used_ports.add((port["nodePort"], proto))
    if _needs_health_check(spec):
        if not health:
            taken = used_health | {n for n, _ in used_ports}
            low, high = NODE_PORT_RANGE
            health = next((n for n in range(low, high + 1) if n not in taken), 0)
            if not health:
                raise ValidationError("spec.healthCheckNodePort", "no free node port")
        spec["healthCheckNodePort"] = health
    return out
