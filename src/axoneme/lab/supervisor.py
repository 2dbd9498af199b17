"""The lab supervisor: one background process that owns a running lab.

It starts etcd in the lab namespace, registers the nodes, runs one agent
per node inside the node's namespace and restarts any agent that dies (as a
DaemonSet would), runs the node runtime for pods, the world outside and its
router's health checks of the nodes (:mod:`axoneme.lab.worldlb`). ``lab.json``
tells the CLI what is running; SIGTERM stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import asdict
from typing import Any

from axoneme.k8s.apply import new_object
from axoneme.kit.files import atomic_write_text
from axoneme.lab.operators import LabOperators
from axoneme.lab.runtime import NodeRuntime
from axoneme.lab.services import ServiceControllers
from axoneme.lab.topology import (
    AGENT_METRICS_PORT,
    ENV_MARK,
    ETCD_CLIENT_PORT,
    ETCD_UNIX_NAME,
    LAB_DIR,
    LAB_NETNS,
    OBSERVER_PORT,
    STORE_IP,
    LabConfig,
    NodePlan,
    bpf_pin_dir,
    node_cgroup,
    node_plans,
    state_file,
    store_unix_path,
    store_url_for_nodes,
)
from axoneme.lab.world import run_world, world_ready
from axoneme.lab.worldlb import WorldLoadBalancer
from axoneme.relay.lab import run_lab_relay
from axoneme.store.etcd import EtcdStore
from axoneme.store.informer import run_informer
from axoneme.store.types import Key, Store, StoreError

log = logging.getLogger("axoneme.lab")


def lab_env() -> dict[str, str]:
    return {**os.environ, ENV_MARK: str(LAB_DIR)}


def node_object(plan: NodePlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": plan.name, "labels": {"kubernetes.io/hostname": plan.name}},
        "spec": {"podCIDR": plan.pod_cidr, "podCIDRs": [plan.pod_cidr]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": plan.ip},
                {"type": "Hostname", "address": plan.name},
            ]
        },
    }


def agent_args(plan: NodePlan, config: LabConfig) -> list[str]:
    return [
        "--ipam",
        "cluster-pool",  # pod CIDRs from the operators' CiliumNodes
        "--policy-enforcement",
        config.policy_enforcement,
        *(["--policy-audit-mode"] if config.policy_audit_mode else []),
        *(health_args(plan) if config.health else []),
        "--enable-tcp-retransmit-tracking",  # cheap: runs only when a segment is resent
        "--routing-mode",
        config.routing_mode,
        "--host-routing",
        config.host_routing,
        "--nodeport-acceleration",
        config.nodeport_acceleration,
        "--bpf-lb-mode",
        config.lb_mode,
        "--service-no-backend-response",
        config.no_backend_response,
        "--node",
        plan.name,
        "--store",
        store_url_for_nodes(),
        "--state-dir",
        str(plan.state_dir),
        "--socket",
        str(plan.socket),
        "--bpf-pin-dir",
        str(bpf_pin_dir(plan)),
        "--cgroup-root",
        str(node_cgroup(plan)),
        "--hubble-socket-path",
        str(plan.observer_socket),
        "--hubble-listen-address",
        f"{plan.ip}:{OBSERVER_PORT}",
        "--prometheus-serve-addr",
        f"{plan.ip}:{AGENT_METRICS_PORT}",
    ]


def health_args(plan: NodePlan) -> list[str]:
    # Fast probes and a short window: the lab shows loss within seconds of it starting.
    return [
        "--enable-health-checking",
        f"--health-netns={plan.netns}-health",
        "--health-interval=0.5",
        "--health-window=20",
    ]


class Supervisor:
    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.plans = node_plans(config)
        self.etcd: asyncio.subprocess.Process | None = None
        self.agents: dict[str, asyncio.subprocess.Process] = {}
        self.restarts: dict[str, int] = {p.name: 0 for p in self.plans}
        self.stopping = False
        self.store: Store = EtcdStore(f"unix:{store_unix_path()}")
        self.runtime = NodeRuntime(self.store, self.plans)
        self.operators = LabOperators(config, lab_env())  # cluster IPAM, GC (was here)
        self.ready = False
        # "stop" / "start" requests for etcd (SIGUSR1 / SIGUSR2): outage tests.
        self.etcd_requests: asyncio.Queue[str] = asyncio.Queue()

    def write_state(self) -> None:
        state = {
            "supervisorPid": os.getpid(),
            "ready": self.ready,
            "config": asdict(self.config),
            "store": {
                "unix": str(store_unix_path()),
                "url": store_url_for_nodes(),
                "pid": self.etcd.pid if self.etcd else None,
                "running": self.etcd is not None and self.etcd.returncode is None,
            },
            "operators": self.operators.state(),
            "nodes": [
                {
                    **asdict(p),
                    "socket": str(p.socket),
                    "log": str(p.log),
                    "agentPid": self.agents[p.name].pid if p.name in self.agents else None,
                    "agentRestarts": self.restarts[p.name],
                }
                for p in self.plans
            ],
        }
        atomic_write_text(state_file(), json.dumps(state, indent=1), mode=0o644)

    async def start_etcd(self) -> None:
        data = LAB_DIR / "etcd"
        data.mkdir(parents=True, exist_ok=True)
        logfile = open(LAB_DIR / "etcd.log", "ab")  # noqa: SIM115 - handed to the child
        self.etcd = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            LAB_NETNS,
            "etcd",
            "--name",
            "axoneme-lab",
            "--data-dir",
            str(data / "data"),
            "--listen-client-urls",
            f"http://{STORE_IP}:{ETCD_CLIENT_PORT},http://127.0.0.1:{ETCD_CLIENT_PORT},"
            f"unix://{ETCD_UNIX_NAME}",
            "--advertise-client-urls",
            f"http://{STORE_IP}:{ETCD_CLIENT_PORT}",
            "--listen-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-cluster",
            "axoneme-lab=http://127.0.0.1:2380",
            cwd=LAB_DIR,
            stdout=logfile,
            stderr=logfile,
            stdin=asyncio.subprocess.DEVNULL,
            env=lab_env(),
        )
        logfile.close()
        for _ in range(200):
            with contextlib.suppress(StoreError):
                await self.store.health()
                return
            if self.etcd.returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise RuntimeError(f"etcd did not come up (see {LAB_DIR / 'etcd.log'})")

    async def stop_etcd(self) -> None:
        if self.etcd is not None and self.etcd.returncode is None:
            self.etcd.terminate()
            try:
                await asyncio.wait_for(self.etcd.wait(), timeout=5)
            except TimeoutError:
                self.etcd.kill()
                await self.etcd.wait()

    async def control_etcd(self) -> None:
        """Stop or start etcd on request (``axoneme lab etcd stop|start``), for outage tests."""
        while True:
            action = await self.etcd_requests.get()
            running = self.etcd is not None and self.etcd.returncode is None
            try:
                if action == "stop" and running:
                    await self.stop_etcd()
                    log.warning("etcd stopped on request")
                elif action == "start" and not running:
                    await self.start_etcd()
                    log.info("etcd started on request")
            except RuntimeError as exc:
                log.error("%s", exc)
            self.write_state()

    async def create_system_namespaces(self) -> None:
        for name in ("default", "kube-system"):
            if await self.store.get(Key("Namespace", "", name)) is None:
                await self.store.create(
                    new_object(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                    )
                )

    async def register_nodes(self) -> None:
        for plan in self.plans:
            existing = await self.store.get(Key("Node", "", plan.name))
            obj = node_object(plan)
            if existing is None:
                await self.store.create(new_object(obj))
            else:
                await self.store.put(obj)

    async def run_agent(self, plan: NodePlan) -> None:
        """Keep one agent running for ``plan``; restart it when it dies."""
        backoff = 0.5
        while not self.stopping:
            plan.dir.mkdir(parents=True, exist_ok=True)
            with open(plan.log, "ab") as logfile:
                # nsenter joins only the network namespace: unlike `ip netns exec`
                # it keeps the machine's mounts, so the agent sees the real bpffs
                # and cgroup2 (datapath-feasibility.md pitfall 2).
                proc = await asyncio.create_subprocess_exec(
                    "nsenter",
                    f"--net=/run/netns/{plan.netns}",
                    sys.executable,
                    "-m",
                    "axoneme.agent.daemon",
                    *agent_args(plan, self.config),
                    stdout=logfile,
                    stderr=logfile,
                    stdin=asyncio.subprocess.DEVNULL,
                    env=lab_env(),
                )
            self.agents[plan.name] = proc
            self.write_state()
            started = asyncio.get_running_loop().time()
            code = await proc.wait()
            if self.stopping:
                return
            self.restarts[plan.name] += 1
            ran = asyncio.get_running_loop().time() - started
            backoff = 0.5 if ran > 10 else min(backoff * 2, 10.0)
            log.warning("agent on %s exited with %s; restarting in %.1fs", plan.name, code, backoff)
            await asyncio.sleep(backoff)

    async def wait_agents_healthy(self, timeout: float = 60.0) -> None:
        from axoneme.api.client import AgentClient, AgentUnavailableError

        deadline = asyncio.get_running_loop().time() + timeout
        for plan in self.plans:
            client = AgentClient(plan.socket)
            while True:
                try:
                    await asyncio.to_thread(client.get, "/v1/healthz")
                    break
                except AgentUnavailableError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise RuntimeError(
                            f"agent on {plan.name} not healthy (see {plan.log})"
                        ) from None
                    await asyncio.sleep(0.1)

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.etcd_requests.put_nowait, "stop")
        loop.add_signal_handler(signal.SIGUSR2, self.etcd_requests.put_nowait, "start")
        self.write_state()
        try:
            async with asyncio.TaskGroup() as tg:
                await self.start_etcd()
                await self.register_nodes()
                for plan in self.plans:  # each node's pods and socket LB (topology.py)
                    node_cgroup(plan).mkdir(parents=True, exist_ok=True)
                await self.create_system_namespaces()
                # Operators first: the agents take their pod CIDR from the CiliumNodes.
                gc = tg.create_task(self.operators.run(self.write_state), name="operators")
                agents = [
                    tg.create_task(self.run_agent(p), name=f"agent-{p.name}") for p in self.plans
                ]
                await self.wait_agents_healthy()
                informer = tg.create_task(
                    run_informer(self.store, "Pod", self.runtime.on_sync, self.runtime.on_event),
                    name="pod-informer",
                )
                runtime = tg.create_task(self.runtime.run(), name="node-runtime")
                tg.create_task(run_world(stop), name="world")
                etcd_control = tg.create_task(self.control_etcd(), name="etcd-control")
                services = tg.create_task(
                    ServiceControllers(self.store).run(), name="service-controllers"
                )
                relay = tg.create_task(run_lab_relay(), name="relay")
                # The world's router health-checks nodes for eTP Local services.
                nodes = {p.name: p.ip for p in self.plans}
                world_lb = tg.create_task(
                    WorldLoadBalancer(self.store, nodes).run(), name="world-lb"
                )
                await world_ready()
                self.ready = True
                self.write_state()
                log.info("lab ready: %d nodes", len(self.plans))
                await stop.wait()
                log.info("stopping the lab")
                informer.cancel()
                runtime.cancel()
                gc.cancel()
                etcd_control.cancel()
                services.cancel()
                relay.cancel()
                world_lb.cancel()
                await self.runtime.shutdown()
                self.stopping = True
                for proc in self.agents.values():
                    if proc.returncode is None:
                        proc.terminate()
                for task in agents:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await self.stop_children()
            await self.store.close()
        return 0

    async def stop_children(self) -> None:
        self.stopping = True
        await self.operators.stop()
        procs = [p for p in self.agents.values() if p.returncode is None]
        if self.etcd is not None and self.etcd.returncode is None:
            procs.append(self.etcd)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="axoneme-lab-supervisor")
    p.add_argument("--config", required=True, help="the LabConfig, as LabConfig.to_json")
    ns = p.parse_args(argv)
    config = LabConfig.from_json(ns.config)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = asyncio.run(Supervisor(config).run())
    except Exception:
        log.exception("lab supervisor failed")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
