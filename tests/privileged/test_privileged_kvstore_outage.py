"""etcd stopped for 30 s under traffic: established flows and policy hold, new pods
fail with a clear error, and everything converges once etcd is back."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from axoneme.api.client import AgentClient
from axoneme.k8s.objects import parse_pod
from axoneme.kit.netns import socket_in
from axoneme.lab import control
from axoneme.lab.runtime import CNIFailure, Sandbox, invoke_cni
from axoneme.lab.topology import LabConfig, node_plans, pod_netns, store_unix_path
from axoneme.store.etcd import EtcdStore
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

pytestmark = [pytest.mark.lab, pytest.mark.slow]

OUTAGE = 30.0
POLICY = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "web-from-client", "namespace": "kvo"},
    "spec": {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
            }
        ],
    },
}


def netns_of(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"/run/netns/{pod_netns(meta['namespace'], meta['name'], meta['uid'])}"


def connect(pod: dict[str, Any], ip: str, port: int, timeout: float = 2.0) -> socket.socket:
    sock = socket_in(netns_of(pod), socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(True)
        sock.settimeout(timeout)
        sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def tcp_probe(pod: dict[str, Any], ip: str, port: int) -> str:
    try:
        connect(pod, ip, port).close()
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"error {exc}"
    return "reachable"


class Flow:
    """One established TCP connection echoing a line every 0.2 s in a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(5)
        self.echoed: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            line = f"ping {n}\n".encode()
            try:
                self.sock.sendall(line)
                got = b""
                while len(got) < len(line):
                    chunk = self.sock.recv(len(line) - len(got))
                    if not chunk:
                        raise ConnectionError("closed by the peer")
                    got += chunk
                if got != line:
                    raise ConnectionError(f"echo {got!r} != {line!r}")
                self.echoed.append(time.monotonic())
            except OSError as exc:
                self.errors.append(f"{time.monotonic():.1f}: {exc}")
                return
            n += 1
            self._stop.wait(0.2)

    def between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.echoed)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


def store_list(kind: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        store = EtcdStore(f"unix:{store_unix_path()}")
        try:
            return (await store.list(kind)).items
        finally:
            await store.close()

    return asyncio.run(run())


def cni_add_during_outage(node: str) -> CNIFailure:
    """Run the real CNI plugin's ADD for a pod on ``node`` as the runtime would."""
    plan = next(p for p in node_plans(LabConfig(nodes=2)) if p.name == node)
    pod = parse_pod(pod_manifest("kvo", "cni-during-outage", node, {"app": "client"}, []))
    sandbox = Sandbox("outage-uid", pod, "axn-h2-outage", "outage-container")
    # The sandbox namespace exists as a runtime's would; lab down sweeps axn-* if we die.
    subprocess.run(["ip", "netns", "add", sandbox.netns], check=True)
    try:
        with pytest.raises(CNIFailure) as failure:
            asyncio.run(invoke_cni("ADD", sandbox, plan))
        links = subprocess.run(
            ["ip", "-n", sandbox.netns, "-o", "link"], capture_output=True, text=True, check=True
        ).stdout
        assert "eth0" not in links  # nothing was half set up
    finally:
        subprocess.run(["ip", "netns", "del", sandbox.netns], check=True)
    return failure.value


def test_etcd_outage_under_traffic(lab: dict[str, Any]) -> None:
    ax(
        "apply",
        "-f",
        "-",
        stdin=manifest(
            namespace("kvo"),
            pod_manifest("kvo", "web", "node2", {"app": "web"}, [(80, "TCP")]),
            pod_manifest("kvo", "client", "node1", {"app": "client"}, []),
            pod_manifest("kvo", "other", "node1", {"app": "other"}, []),
        ),
    )
    pods = wait_pods("kvo", {"web", "client", "other"})
    out = ax("policy", "import", "-f", "-", stdin=manifest(POLICY)).stdout
    ax("policy", "wait", out.strip().splitlines()[-1].split()[-1], "--timeout", "30")
    web_ip = pods["web"]["status"]["podIP"]
    assert tcp_probe(pods["client"], web_ip, 80) == "reachable"
    assert tcp_probe(pods["other"], web_ip, 80) == "timeout"
    ceps_before = {c["metadata"]["name"] for c in store_list("CiliumEndpoint")}
    assert ceps_before >= {"web", "client", "other"}

    flow = Flow(connect(pods["client"], web_ip, 80))
    try:
        wait_for(lambda: len(flow.echoed) >= 3, 10, "the flow to start")
        control.etcd_control("stop")
        stopped = time.monotonic()

        # New pods: the API refuses to store them, and CNI for a pod fails clearly.
        late = pod_manifest("kvo", "late", "node1", {"app": "client"}, [])
        refused = ax("apply", "-f", "-", stdin=manifest(late), check=False)
        assert refused.returncode != 0
        assert "unreachable" in refused.stderr + refused.stdout
        failure = cni_add_during_outage("node1")
        assert failure.result.get("code") == 11, failure.result  # CNI "try again later"
        assert "store is unreachable" in failure.result.get("msg", ""), failure.result

        # The kernel keeps enforcing the last known state, for new connections too.
        assert tcp_probe(pods["client"], web_ip, 80) == "reachable"
        assert tcp_probe(pods["other"], web_ip, 80) == "timeout"
        status = AgentClient(Path(lab["nodes"][0]["socket"]), timeout=10).get("/v1/status")
        assert status["store"].startswith("Failure"), status["store"]
        assert status["endpoints"]["ready"] >= 2

        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        during = flow.between(stopped, time.monotonic())
        control.etcd_control("start")
        restarted = time.monotonic()
        # At 5 echoes a second, a flow that kept working saw well over 100 of them.
        assert not flow.errors, flow.errors
        assert during >= 100, f"only {during} echoes during the outage"

        # Convergence: the new pod starts, gets its identity and is allowed by policy.
        ax("apply", "-f", "-", stdin=manifest(late))
        pods = wait_pods("kvo", {"late"}, timeout=60)
        converged = time.monotonic() - restarted
        assert tcp_probe(pods["late"], web_ip, 80) == "reachable"
        assert tcp_probe(pods["other"], web_ip, 80) == "timeout"

        def entries_back() -> bool:
            ceps = {c["metadata"]["name"] for c in store_list("CiliumEndpoint")}
            nodes = {n["metadata"]["name"] for n in store_list("ClusterNode")}
            return ceps >= ceps_before | {"late"} and nodes == {"node1", "node2"}

        wait_for(entries_back, 30, "node entries and endpoints in the store")
        for node in lab["nodes"]:
            st = AgentClient(Path(node["socket"]), timeout=10).get("/v1/status")
            assert st["store"].startswith("Ok"), st["store"]
            assert st["nodeLease"]["lease"] and st["nodeLease"]["ownedEntries"] >= 2
        assert "node lease" in ax("status").stdout
        assert not flow.errors, flow.errors
        print(
            f"outage {OUTAGE:.0f}s: {during} echoes during it; pod Running {converged:.1f}s after"
        )
    finally:
        flow.close()
        ax("delete", "-f", "-", stdin=manifest(namespace("kvo")), check=False)
