"""The Kubernetes upstream network-policy test model, on the lab.

Namespaces x, y, z (labelled ``ns=<name>``), pods a, b, c in each (labelled
``pod=<name>``), each serving ports 80 and 81 on TCP, UDP and SCTP. A case
applies policies, waits until every agent runs them (``policy wait``), probes
the full pod-to-pod matrix and compares it with an expectation written by
hand in the test (independent of the product's own evaluator).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from privileged.helpers import apply_policies as apply_policies  # the netpol tests' m.*
from privileged.helpers import ax, manifest, wait_pods
from privileged.helpers import clear_policies as clear_policies
from privileged.helpers import cnp as cnp

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
NODES = {"a": "node1", "b": "node2", "c": "node1"}
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP", "SCTP")

Pair = tuple[str, str]  # ("x/a", "y/b")
Expect = Callable[[str, str], bool]


def model_manifest() -> str:
    objects: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"ns": ns}},
            }
        )
        for pod in PODS:
            ports = [
                {"containerPort": p, "protocol": proto, "name": f"serve-{p}-{proto.lower()}"}
                for p in PORTS
                for proto in PROTOCOLS
            ]
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                    "spec": {
                        "nodeName": NODES[pod],
                        "containers": [{"name": "cont", "image": "agnhost", "ports": ports}],
                    },
                }
            )
    return manifest(*objects)


def deploy() -> dict[str, str]:
    """Deploy the model; returns pod ref → pod IP."""
    ax("apply", "-f", "-", stdin=model_manifest())
    ips = {}
    for ns in NAMESPACES:
        pods = wait_pods(ns, set(PODS), timeout=60)
        ips.update({f"{ns}/{name}": p["status"]["podIP"] for name, p in pods.items()})
    return ips


def all_pods() -> list[str]:
    return [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]


def probe_matrix(port: int, proto: str, timeout: float = 1.0) -> dict[Pair, bool]:
    pairs = [(s, d) for s in all_pods() for d in all_pods() if s != d]
    lines = "\n".join(f"{s} {d}:{port}/{proto}" for s, d in pairs)
    out = ax("probe", "--timeout", str(timeout), "-f", "-", stdin=lines, check=False).stdout
    results = out.splitlines()
    assert len(results) == len(pairs), out
    return {pair: line.startswith("reachable") for pair, line in zip(pairs, results, strict=True)}


def expected_matrix(expect: Expect) -> dict[Pair, bool]:
    return {(s, d): expect(s, d) for s in all_pods() for d in all_pods() if s != d}


def check(expect: Expect, port: int = 80, proto: str = "TCP") -> None:
    got = probe_matrix(port, proto)
    want = expected_matrix(expect)
    wrong = sorted(
        f"{s} -> {d}: got {'reachable' if got[(s, d)] else 'blocked'}, "
        f"want {'reachable' if w else 'blocked'}"
        for (s, d), w in want.items()
        if got[(s, d)] != w
    )
    assert not wrong, f"{port}/{proto}: {len(wrong)} wrong:\n" + "\n".join(wrong)


def netpol(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def ns_of(ref: str) -> str:
    return ref.split("/")[0]


def pod_of(ref: str) -> str:
    return ref.split("/")[1]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)
