"""Helpers for privileged tests: run the CLI, wait for pods, read lab state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any


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


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


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
