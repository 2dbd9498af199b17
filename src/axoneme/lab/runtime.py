"""The lab's node runtime: what kubelet and a container runtime do for a pod, and nothing more.

For each Pod bound to a lab node it creates a network namespace (the
sandbox), calls the CNI plugin exactly as a runtime does (environment +
config on stdin), starts the built-in workload server in the namespace,
and reports ``status.phase``/``status.podIP`` back to the store. A failed
CNI ADD leaves no sandbox behind and is retried with backoff, as kubelet
retries sandbox creation. Pods with no ``spec.nodeName`` are bound to the
node with the fewest pods (the scheduler's job, done minimally).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axoneme.k8s.objects import Pod, parse_pod
from axoneme.kit import cgroup
from axoneme.lab import netsetup
from axoneme.lab.topology import (
    ENV_MARK,
    LAB_DIR,
    NodePlan,
    cni_bin_dir,
    node_cgroup,
    pod_netns,
)
from axoneme.store.types import ConflictError, Key, Resource, Store, StoreError, WatchEvent

log = logging.getLogger(__name__)

CNI_NETWORK = "axoneme"
IFNAME = "eth0"


@dataclass
class Sandbox:
    uid: str
    pod: Pod
    netns: str
    container_id: str
    ip: str = ""
    workload: asyncio.subprocess.Process | None = None


def cni_config(plan: NodePlan) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "type": "axoneme-cni",
        "agentSocket": str(plan.socket),
    }


def cni_env(command: str, sandbox: Sandbox) -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": sandbox.container_id,
        "CNI_NETNS": f"/run/netns/{sandbox.netns}",
        "CNI_IFNAME": IFNAME,
        "CNI_PATH": str(cni_bin_dir()),
        "CNI_ARGS": (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={sandbox.pod.namespace};"
            f"K8S_POD_NAME={sandbox.pod.name};K8S_POD_INFRA_CONTAINER_ID={sandbox.container_id}"
        ),
    }


class CNIFailure(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        super().__init__(f"{result.get('msg', 'CNI failed')}: {result.get('details', '')}")


async def invoke_cni(command: str, sandbox: Sandbox, plan: NodePlan) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        str(cni_bin_dir() / "axoneme-cni"),
        env=cni_env(command, sandbox),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(json.dumps(cni_config(plan)).encode())
    try:
        result: dict[str, Any] = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        result = {"msg": "CNI plugin printed no JSON", "details": (out + err).decode()[-500:]}
    if proc.returncode != 0:
        raise CNIFailure(result)
    return result


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeRuntime:
    """Runs the pods of every lab node; one instance per lab, inside the supervisor."""

    def __init__(self, store: Store, plans: list[NodePlan], python: str = sys.executable) -> None:
        self._store = store
        self._plans = {p.name: p for p in plans}
        self._python = python
        self._sandboxes: dict[str, Sandbox] = {}
        self._pods: dict[str, Resource] = {}  # uid → latest object seen
        self._retry_at: dict[str, tuple[float, float]] = {}  # uid → (when, backoff)
        self._wake = asyncio.Event()

    async def on_sync(self, items: list[Resource]) -> None:
        self._pods = {p["metadata"]["uid"]: p for p in items if p["metadata"].get("uid")}
        self._wake.set()

    async def on_event(self, event: WatchEvent) -> None:
        uid = event.object["metadata"].get("uid")
        if not uid:
            return
        if event.type == "DELETED":
            self._pods.pop(uid, None)
        else:
            self._pods[uid] = event.object
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._reconcile()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()

    async def _reconcile(self) -> None:
        for uid in [u for u in self._sandboxes if u not in self._pods]:
            await self._stop(self._sandboxes.pop(uid))
        for uid, raw in list(self._pods.items()):
            pod = parse_pod(raw)
            if not pod.node_name:
                await self._bind(raw)
                continue
            if pod.node_name not in self._plans or uid in self._sandboxes:
                continue
            when, _ = self._retry_at.get(uid, (0.0, 0.0))
            if time.monotonic() >= when:
                await self._start(uid, pod)
        await self._reap()

    async def _bind(self, raw: Resource) -> None:
        counts = {name: 0 for name in self._plans}
        for other in self._pods.values():
            node = other.get("spec", {}).get("nodeName")
            if node in counts:
                counts[node] += 1
        target = min(counts, key=lambda n: (counts[n], n))
        raw = json.loads(json.dumps(raw))
        raw["spec"]["nodeName"] = target
        with contextlib.suppress(ConflictError, StoreError):
            await self._store.put(raw, expect_revision=int(raw["metadata"]["resourceVersion"]))

    async def _start(self, uid: str, pod: Pod) -> None:
        plan = self._plans[pod.node_name]
        sandbox = Sandbox(uid, pod, pod_netns(pod.namespace, pod.name, uid), uid.replace("-", ""))
        try:
            await asyncio.to_thread(netsetup.create_namespace, sandbox.netns)
            result = await invoke_cni("ADD", sandbox, plan)
            sandbox.ip = result["ips"][0]["address"].split("/")[0]
            sandbox.workload = await self._start_workload(sandbox, plan)
        except Exception as exc:
            await self._teardown(sandbox, plan)
            _, backoff = self._retry_at.get(uid, (0.0, 1.0))
            self._retry_at[uid] = (time.monotonic() + backoff, min(backoff * 2, 30.0))
            log.warning("pod %s: sandbox failed: %s", pod.ref, exc)
            await self._report(
                uid, "Pending", "", plan, reason="FailedCreatePodSandBox", message=str(exc)
            )
            return
        self._retry_at.pop(uid, None)
        self._sandboxes[uid] = sandbox
        log.info("pod %s running on %s with %s", pod.ref, plan.name, sandbox.ip)
        await self._report(uid, "Running", sandbox.ip, plan)

    async def _start_workload(self, sandbox: Sandbox, plan: NodePlan) -> asyncio.subprocess.Process:
        args = [
            "ip",
            "netns",
            "exec",
            sandbox.netns,
            self._python,
            "-m",
            "axoneme.lab.workload",
            "--namespace",
            sandbox.pod.namespace,
            "--pod",
            sandbox.pod.name,
            "--node",
            plan.name,
        ]
        for port in sandbox.pod.ports:
            if port.protocol in ("TCP", "UDP", "SCTP"):
                args += ["--port", f"{port.container_port}/{port.protocol}"]
        logfile = LAB_DIR / "pods" / f"{sandbox.netns}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "ab") as log_out:
            proc = await asyncio.create_subprocess_exec(
                # The node's cgroup first: the node's socket LB serves its pods.
                *cgroup.join_argv(node_cgroup(plan), args),
                stdout=asyncio.subprocess.PIPE,
                stderr=log_out,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, ENV_MARK: str(LAB_DIR)},
            )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        if line.strip() != b"ready":
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"workload did not start (see {logfile})")
        return proc

    async def _reap(self) -> None:
        """A workload that exited is restarted, as kubelet restarts a container."""
        for sandbox in self._sandboxes.values():
            proc = sandbox.workload
            if proc is not None and proc.returncode is not None:
                plan = self._plans[sandbox.pod.node_name]
                log.warning(
                    "pod %s: workload exited (%s), restarting", sandbox.pod.ref, proc.returncode
                )
                with contextlib.suppress(Exception):
                    sandbox.workload = await self._start_workload(sandbox, plan)

    async def _stop(self, sandbox: Sandbox) -> None:
        plan = self._plans[sandbox.pod.node_name]
        await self._teardown(sandbox, plan)
        log.info("pod %s removed from %s", sandbox.pod.ref, plan.name)

    async def _teardown(self, sandbox: Sandbox, plan: NodePlan) -> None:
        proc = sandbox.workload
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        try:
            await invoke_cni("DEL", sandbox, plan)
        except Exception as exc:  # the namespace goes anyway; the agent GCs on restart
            log.warning("pod %s: CNI DEL failed: %s", sandbox.pod.ref, exc)
        await asyncio.to_thread(netsetup.delete_namespace, sandbox.netns)

    async def _report(
        self, uid: str, phase: str, ip: str, plan: NodePlan, reason: str = "", message: str = ""
    ) -> None:
        for _ in range(5):
            raw = self._pods.get(uid)
            if raw is None:
                return
            current = await self._store.get(Key.of(raw))
            if current is None or current["metadata"].get("uid") != uid:
                return
            status: dict[str, Any] = {"phase": phase, "hostIP": plan.ip}
            if ip:
                status.update(podIP=ip, podIPs=[{"ip": ip}], startTime=now())
            if reason:
                status.update(reason=reason, message=message)
            current["status"] = status
            try:
                await self._store.put(
                    current, expect_revision=int(current["metadata"]["resourceVersion"])
                )
                return
            except ConflictError:
                continue

    async def shutdown(self) -> None:
        for uid in list(self._sandboxes):
            await self._stop(self._sandboxes.pop(uid))

    def pids(self) -> dict[str, int]:
        return {
            s.pod.ref: s.workload.pid
            for s in self._sandboxes.values()
            if s.workload is not None and s.workload.returncode is None
        }


def pod_log_dir() -> Path:
    return LAB_DIR / "pods"
