"""Helpers for privileged tests: run the CLI, wait for pods, build manifests,
change policies, read flows, and talk to the lab from the world namespace."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from axoneme.kit.netns import socket_in
from axoneme.lab.topology import WORLD_IP, WORLD_NETNS


def ax(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``axoneme ARGS`` as a user would, returning the completed process."""
    proc = subprocess.run(
        [sys.executable, "-m", "axoneme.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"axoneme {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def pods(namespace: str) -> dict[str, dict[str, Any]]:
    items = json.loads(ax("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p for p in items}


def wait_pods(
    namespace: str, names: set[str], phase: str = "Running", timeout: float = 30.0
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        current = pods(namespace)
        if all(current.get(n, {}).get("status", {}).get("phase") == phase for n in names):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pods {names} not {phase}: { {n: p.get('status') for n, p in current.items()} }"
            )
        time.sleep(0.2)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """``condition()``'s first truthy value within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        time.sleep(0.1)


def node_ips(state: dict[str, Any]) -> dict[str, str]:
    """The lab's node addresses by node name."""
    return {n["name"]: n["ip"] for n in state["nodes"]}


def pod_manifest(
    namespace: str, name: str, node: str, labels: dict[str, str], ports: list[tuple[int, str]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "main",
                    "image": "axoneme/workload",
                    "ports": [{"containerPort": p, "protocol": proto} for p, proto in ports],
                }
            ],
        },
    }


def manifest(*objects: dict[str, Any]) -> str:
    return "\n---\n".join(json.dumps(o) for o in objects)


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def apply(*objects: dict[str, Any]) -> None:
    ax("apply", "-f", "-", stdin=manifest(*objects))


def node_port_service(
    ns: str, name: str, selector: dict[str, str], http: int, dns: int | None = None, **spec: Any
) -> dict[str, Any]:
    """A NodePort Service: HTTP 80 -> 8080 on node port ``http`` and, with ``dns``,
    UDP 53 -> 5353 on that node port; ``spec`` adds fields (affinity, traffic policy)."""
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": 80, "targetPort": 8080, "nodePort": http}
    ]
    if dns is not None:
        ports.append(
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353, "nodePort": dns}
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "NodePort", "selector": selector, "ports": ports, **spec},
    }


def lb_service(
    ns: str, name: str, selector: dict[str, str], policy: str = "Local", **spec: Any
) -> dict[str, Any]:
    """A LoadBalancer Service, HTTP 80 -> 8080, with externalTrafficPolicy ``policy``;
    ``spec`` adds fields (healthCheckNodePort...)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": policy,
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            **spec,
        },
    }


def http_pod(ns: str, name: str, node: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod serving HTTP on 8080, labelled ``labels`` plus ``pod: NAME``."""
    return pod_manifest(ns, name, node, {**labels, "pod": name}, [(8080, "TCP")])


# ---- policies and flows ------------------------------------------------------------------


def cnp(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def apply_policies(*policies: dict[str, Any]) -> None:
    """Import ``policies`` and wait until every agent enforces the revision."""
    out = ax("policy", "import", "-f", "-", stdin=manifest(*policies)).stdout
    revision = int(out.strip().splitlines()[-1].split()[-1])
    ax("policy", "wait", str(revision), "--timeout", "30")


def clear_policies() -> None:
    """Delete every policy and wait until every agent enforces that."""
    out = ax("policy", "delete", "--all").stdout
    revision = int(out.strip().splitlines()[-1].split()[-1])
    if revision:
        ax("policy", "wait", str(revision), "--timeout", "30")


def observed_flows(*args: str, last: int = 500) -> list[dict[str, Any]]:
    """The flows ``axoneme observe -o json --last LAST ARGS`` prints."""
    out = ax("observe", "-o", "json", "--last", str(last), *args).stdout
    return [r["flow"] for r in map(json.loads, out.splitlines()) if "flow" in r]


# ---- clients outside the cluster ---------------------------------------------------------


def world_socket(kind: int, timeout: float = 2.0, bind_port: int = 0) -> socket.socket:
    """A blocking socket in the world namespace (outside the cluster)."""
    s = socket_in(f"/run/netns/{WORLD_NETNS}", socket.AF_INET, kind)
    s.setblocking(True)
    s.settimeout(timeout)
    if bind_port:  # a chosen flow: its 5-tuple decides which node the world's ECMP picks
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((WORLD_IP, bind_port))
    return s


def world_http(ip: str, port: int, timeout: float = 2.0, bind_port: int = 0) -> dict[str, Any]:
    """One HTTP request from the world on a new connection; the workload's JSON
    answer (``name``: who served, ``client``: the address it saw)."""
    s = world_socket(socket.SOCK_STREAM, timeout, bind_port)
    # Reset on close: no TIME_WAIT, so a bound source port can be used again at once.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.connect((ip, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: np\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    finally:
        s.close()
    return dict(json.loads(data.partition(b"\r\n\r\n")[2]))


def world_udp(
    ip: str, port: int, payload: bytes, timeout: float = 2.0, bind_port: int = 0
) -> tuple[bytes, tuple[str, int]]:
    """One datagram from the world and the first one back, with its sender."""
    u = world_socket(socket.SOCK_DGRAM, timeout, bind_port)
    try:
        u.sendto(payload, (ip, port))
        data, peer = u.recvfrom(65535)
        return data, peer
    finally:
        u.close()


def world_refused(ip: str, port: int, kind: int, timeout: float = 2.0) -> float:
    """Seconds until the world's TCP connect / connected UDP receive is refused."""
    s = world_socket(kind, timeout)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionRefusedError):
            s.connect((ip, port))
            if kind == socket.SOCK_DGRAM:
                s.send(b"anyone?")
                s.recv(100)  # the ICMP error surfaces here
        return time.monotonic() - started
    finally:
        s.close()
