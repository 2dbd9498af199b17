"""What the API server fills in on a Service: its cluster IP and node ports.

Pure: given the Service being applied, what is stored under its key (if
anything) and every other stored Service, return the object to store with
``spec.clusterIP``/``clusterIPs`` and ``nodePort`` set, or raise
ValidationError naming the field (an address outside the service CIDR or
taken, a port taken, a change to an immutable cluster IP).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable
from typing import Any

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.service import HEADLESS, NODE_PORT_RANGE

__all__ = ["DEFAULT_SERVICE_CIDR", "allocate_service"]

Obj = dict[str, Any]
# kube-apiserver's customary --service-cluster-ip-range.
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"


def _taken(others: Iterable[Obj]) -> tuple[set[str], set[tuple[int, str]]]:
    ips: set[str] = set()
    ports: set[tuple[int, str]] = set()
    for o in others:
        spec = o.get("spec", {})
        if spec.get("clusterIP"):
            ips.add(spec["clusterIP"])
        for p in spec.get("ports", []):
            if p.get("nodePort"):
                ports.add((p["nodePort"], p.get("protocol", "TCP")))
    return ips, ports


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
    """``obj`` (validated) with its cluster IP and node ports allocated."""
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    used_ips, used_ports = _taken(others)
    ip = _cluster_ip(out, stored, cidr, used_ips)
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return out
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
            if (port["nodePort"], proto) in used_ports:
                raise ValidationError(
                    f"spec.ports[{i}].nodePort", f"{port['nodePort']} is already allocated"
                )
        elif (port["port"], proto) in had:
            port["nodePort"] = had[(port["port"], proto)]
        else:
            for n in free:
                if (n, proto) not in used_ports:
                    port["nodePort"] = n
                    break
            else:
                raise ValidationError(f"spec.ports[{i}].nodePort", "no free node port")
        used_ports.add((port["nodePort"], proto))
    return out
