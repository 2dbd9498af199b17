"""``axoneme probe`` and ``axoneme exec``: resolve lab names to namespaces and addresses."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from axoneme.cli.context import CLIError, open_store
from axoneme.kit import cgroup
from axoneme.lab.control import require_state
from axoneme.lab.netsetup import NETNS_DIR
from axoneme.lab.topology import CGROUP_ROOT, WORLD_NETNS, WORLD_SOURCE_IP, pod_netns
from axoneme.probe.run import ProbeError, ProbeResult, ProbeTarget, probe_many
from axoneme.probe.spec import ProbeSpec, endpoint_kind
from axoneme.store.types import Key, Store


async def _pod(store: Store, ref: str) -> dict[str, Any]:
    namespace, _, name = ref.partition("/")
    pod = await store.get(Key("Pod", namespace, name))
    if pod is None:
        raise CLIError(f"pod {ref} not found")
    return pod


def _pod_netns_path(pod: dict[str, Any], ref: str) -> str:
    if pod.get("status", {}).get("phase") != "Running":
        raise CLIError(f"pod {ref} is not running (status {pod.get('status', {}).get('phase')})")
    meta = pod["metadata"]
    return f"/run/netns/{pod_netns(meta['namespace'], meta['name'], meta['uid'])}"


class Resolver:
    """Names → netns paths and IPs, with one store read per distinct name."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._nodes = {n["name"]: n for n in require_state()["nodes"]}
        self._pods: dict[str, dict[str, Any]] = {}

    def _node(self, ref: str) -> dict[str, Any]:
        name = ref.removeprefix("node:")
        if name not in self._nodes:
            raise CLIError(f"{ref}: no such lab node (nodes: {', '.join(self._nodes)})")
        node: dict[str, Any] = self._nodes[name]
        return node

    async def pod(self, ref: str) -> dict[str, Any]:
        if ref not in self._pods:
            self._pods[ref] = await _pod(self._store, ref)
        return self._pods[ref]

    async def source(self, ref: str) -> str:
        kind = endpoint_kind(ref)
        if kind == "world":
            path = NETNS_DIR / WORLD_NETNS
            if not path.exists():
                raise CLIError(f"world: this lab has no {WORLD_NETNS} namespace (restart the lab)")
            return str(path)
        if kind == "node":
            return f"/run/netns/{self._node(ref)['netns']}"
        return _pod_netns_path(await self.pod(ref), ref)

    async def cgroup(self, ref: str) -> str | None:
        """The source's node cgroup, so its sockets see that node's socket LB."""
        kind = endpoint_kind(ref)
        if kind == "world":
            return None
        if kind == "node":
            node = str(self._node(ref)["name"])
        else:
            node = str((await self.pod(ref)).get("spec", {}).get("nodeName", ""))
        path = node_cgroup_dir(node) if node else None
        return str(path) if path is not None and path.is_dir() else None

    @staticmethod
    def source_ip(ref: str) -> str | None:
        """The address to send from: the world's, so replies take the world's routes."""
        return WORLD_SOURCE_IP if endpoint_kind(ref) == "world" else None

    async def destination(self, ref: str) -> str:
        kind = endpoint_kind(ref)
        if kind == "world":
            return WORLD_SOURCE_IP
        if kind == "ip":
            return str(ipaddress.ip_address(ref))
        if kind == "node":
            return str(self._node(ref)["ip"])
        pod = await self.pod(ref)
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            raise CLIError(f"pod {ref} has no IP yet")
        return str(ip)


def node_cgroup_dir(node: str) -> Path:
    return CGROUP_ROOT / node


async def run_probes(specs: list[ProbeSpec], timeout: float) -> list[ProbeResult]:
    store = open_store()
    try:
        resolver = Resolver(store)
        targets = [
            ProbeTarget(
                await resolver.source(s.src),
                await resolver.destination(s.dst),
                s.port,
                s.proto,
                resolver.source_ip(s.src),
                await resolver.cgroup(s.src),
            )
            for s in specs
        ]
    finally:
        await store.close()
    try:
        return await probe_many(targets, timeout)
    except ProbeError as exc:
        raise CLIError(str(exc)) from exc


async def exec_in_pod(ref: str, command: list[str]) -> None:
    if "/" not in ref:
        raise CLIError(f"{ref!r}: give the pod as NAMESPACE/NAME")
    if not command:
        raise CLIError("no command given (axoneme exec NS/POD -- CMD ...)")
    store = open_store()
    try:
        pod = await _pod(store, ref)
        path = _pod_netns_path(pod, ref)
    finally:
        await store.close()
    node_cg = node_cgroup_dir(str(pod.get("spec", {}).get("nodeName", "")))
    if node_cg.is_dir():
        cgroup.join(node_cg)  # the pod's processes live in its node's cgroup (socket LB)
    sys.stdout.flush()
    os.execvp("ip", ["ip", "netns", "exec", os.path.basename(path), *command])
