"""The reference dataplane's rules: what kube-proxy in iptables mode writes, for a given set
of Services, as ``iptables-restore`` input. Pure.

The structure is kube-proxy's: ``PREROUTING``/``OUTPUT`` -> ``KUBE-SERVICES`` (one rule per
ClusterIP and port, walked in order) -> ``KUBE-SVC-*`` (one rule per endpoint, chosen with
``-m statistic --mode random``) -> ``KUBE-SEP-*`` (DNAT); NodePorts through
``KUBE-NODEPORTS`` -> ``KUBE-EXT-*`` (marked for masquerade, externalTrafficPolicy
Cluster); ``KUBE-POSTROUTING`` masquerades what was marked; ``KUBE-FORWARD`` in the filter
table accepts marked and established traffic. Chain names hash the service port name as
kube-proxy does (SHA-256, base32, 16 characters).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

MASQ_MARK = "0x4000"


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str  # TCP | UDP
    target_port: int
    node_port: int | None = None


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    endpoints: tuple[str, ...]


def _chain(prefix: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return f"{prefix}-{base64.b32encode(digest).decode()[:16]}"


def filler_services(count: int, endpoint_net: str = "10.81.2.0/24") -> list[Service]:
    """``count`` one-port ClusterIP Services (10.83.0.0/16) with one endpoint each.

    They stand for the rest of a cluster: every new connection to a Service listed
    after them walks past their rules in ``KUBE-SERVICES``.
    """
    if not 0 <= count <= 60_000:
        raise ValueError(f"filler services: {count} is not in 0..60000")
    base = int(ipaddress.ip_address("10.83.0.1"))
    hosts = list(ipaddress.ip_network(endpoint_net).hosts())
    return [
        Service(
            "filler",
            f"svc-{i}",
            str(ipaddress.ip_address(base + i)),
            (ServicePort("http", 80, "TCP", 8080),),
            (str(hosts[100 + i % 100]),),
        )
        for i in range(count)
    ]


def _service_rules(svc: Service, cluster_cidr: str) -> tuple[list[str], list[str], list[str]]:
    """(chains, KUBE-SERVICES rules, other rules) for one Service."""
    chains: list[str] = []
    entry: list[str] = []
    rules: list[str] = []
    for sp in svc.ports:
        port_name = f"{svc.namespace}/{svc.name}:{sp.name}"
        proto = sp.protocol.lower()
        svc_chain = _chain("KUBE-SVC", port_name + sp.protocol)
        chains.append(svc_chain)
        match = f"-p {proto} -m {proto} --dport {sp.port}"
        entry.append(
            f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 {match} "
            f'-m comment --comment "{port_name} cluster IP" -j {svc_chain}'
        )
        rules.append(
            f"-A {svc_chain} ! -s {cluster_cidr} -d {svc.cluster_ip}/32 {match} -j KUBE-MARK-MASQ"
        )
        n = len(svc.endpoints)
        for i, ep in enumerate(svc.endpoints):
            sep = _chain("KUBE-SEP", f"{port_name}{sp.protocol}{ep}")
            chains.append(sep)
            if i < n - 1:
                rules.append(
                    f"-A {svc_chain} -m statistic --mode random --probability "
                    f"{1 / (n - i):.11f} -j {sep}"
                )
            else:
                rules.append(f"-A {svc_chain} -j {sep}")
            rules.append(f"-A {sep} -s {ep}/32 -j KUBE-MARK-MASQ")
            rules.append(
                f"-A {sep} -p {proto} -m {proto} -j DNAT --to-destination {ep}:{sp.target_port}"
            )
        if sp.node_port is not None:
            ext = _chain("KUBE-EXT", port_name + sp.protocol)
            chains.append(ext)
            rules.append(f"-A KUBE-NODEPORTS -p {proto} -m {proto} --dport {sp.node_port} -j {ext}")
            rules.append(f"-A {ext} -j KUBE-MARK-MASQ")
            rules.append(f"-A {ext} -j {svc_chain}")
    return chains, entry, rules


def restore_input(services: Sequence[Service], cluster_cidr: str) -> str:
    """``iptables-restore`` input for a node: filter and nat tables, as kube-proxy writes them."""
    chains: list[str] = []
    entry: list[str] = []
    rules: list[str] = []
    for svc in services:
        c, e, r = _service_rules(svc, cluster_cidr)
        chains += c
        entry += e
        rules += r
    lines = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":KUBE-FORWARD - [0:0]",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f"-A KUBE-FORWARD -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        *(f":{c} - [0:0]" for c in chains),
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        "-A KUBE-POSTROUTING -j MASQUERADE --random-fully",
        *entry,
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
        *rules,
        "COMMIT",
        "",
    ]
    return "\n".join(lines)
