"""``axoneme-agent``: the composition root and lifecycle of one node's agent.

Start order (stop is the reverse): store → own Node (pod CIDR) → endpoint
state restored → host device and forwarding → local API → node routes.
Endpoint state lives in ``state_dir`` and is restored before the API serves,
so a restarted agent answers with the addresses its pods already hold.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from axoneme.agent import nodelease
from axoneme.agent.api import build_app
from axoneme.agent.config import AgentConfig, parse_args
from axoneme.agent.enforcement import Enforcement
from axoneme.agent.monitor import EventHub
from axoneme.agent.noderoutes import NodeRoutes
from axoneme.agent.routing import Routing
from axoneme.agent.service import AgentService
from axoneme.datapath import reasons
from axoneme.datapath.events import DatapathEvent
from axoneme.datapath.linux import netdev
from axoneme.datapath.linux.driver import NetlinkDriver
from axoneme.datapath.linux.loader import DatapathError
from axoneme.datapath.linux.writer import KernelDatapath
from axoneme.endpoint.manager import EndpointManager
from axoneme.ipam.hostscope import IPAMError
from axoneme.k8s.objects import parse_node
from axoneme.store.etcd import EtcdStore
from axoneme.store.informer import run_cluster_informer, run_informer
from axoneme.store.leased import LeasedStore
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Key, Store, StoreError

log = logging.getLogger("axoneme.agent")


def open_store(spec: str) -> Store:
    if spec.startswith("embedded:"):
        return MemoryStore(Path(spec.removeprefix("embedded:")))
    return EtcdStore(spec)


async def wait_for_pod_cidr(store: Store, node: str, ipam: str = "kubernetes") -> str:
    """Block until this node has a pod CIDR (as Cilium does).

    ``cluster-pool``: the operator puts it on the node's CiliumNode
    (spec.ipam.podCIDRs). ``kubernetes``: the Node's spec.podCIDR.
    """
    warned = False
    while True:
        try:
            if ipam == "cluster-pool":
                allocated = await store.get(Key("CiliumNode", "", node))
                cidrs = (allocated or {}).get("spec", {}).get("ipam", {}).get("podCIDRs") or []
                reason = f"CiliumNode {node} has no spec.ipam.podCIDRs yet (is an operator up?)"
            else:
                raw = await store.get(Key("Node", "", node))
                cidrs = list(parse_node(raw).pod_cidrs) if raw is not None else []
                reason = f"Node {node} has no spec.podCIDR yet"
            if cidrs:
                return str(cidrs[0])
        except StoreError as exc:
            reason = str(exc)
        if not warned:
            log.warning("waiting for a pod CIDR: %s", reason)
            warned = True
        await asyncio.sleep(0.5)


async def serve_unix(app: web.Application, path: Path) -> web.AppRunner:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()  # left by a killed agent; we hold the node, nobody else serves it
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    old = os.umask(0o177)  # the socket is born root-only: no window where others connect
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return runner


async def run(config: AgentConfig) -> int:
    # Node-owned entries (node entry, endpoints) are written under the node lease.
    store = LeasedStore(open_store(config.store), nodelease.node_owned)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        # SIGTERM must work while we wait (the store may be down for long).
        waiting = asyncio.ensure_future(wait_for_pod_cidr(store, config.node, config.ipam))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            log.info("stopped before a pod CIDR was known")
            return 0
        stopping.cancel()
        pod_cidr = waiting.result()
        try:
            driver = NetlinkDriver(mtu=Routing(config.routing_mode, config.host_routing).pod_mtu())
            manager = EndpointManager(config.state_dir / "state.json", pod_cidr, driver)
        except IPAMError as exc:
            log.error("%s", exc)
            return 1
        for action in await asyncio.to_thread(manager.restore):
            log.info("restore: %s", action)
        await asyncio.to_thread(netdev.ensure_host_device, manager.router_ip)
        if config.enable_ip_forward:
            netdev.write_sysctl("net.ipv4.ip_forward", "1")
        try:
            kernel = await asyncio.to_thread(KernelDatapath.open, config.bpf_pin_dir)
        except (OSError, DatapathError) as exc:
            log.error("cannot load the datapath into %s: %s", config.bpf_pin_dir, exc)
            return 1
        log.info("datapath %s in %s", "adopted" if kernel.reused else "loaded", config.bpf_pin_dir)
        enforcement = Enforcement(
            config.node,
            store,
            manager,
            kernel,
            mode=config.policy_enforcement,  # type: ignore[arg-type]
            audit=config.policy_audit_mode,
            allow_localhost=config.allow_localhost,
        )
        await enforcement.restore()
        for ep in manager.endpoints():
            if ep.host_ifindex and ep.state == "ready":
                # Idempotent: a restarted agent finds its programs still attached.
                await asyncio.to_thread(kernel.attach, ep.host_ifindex)
        hub = EventHub()
        service = AgentService(config.node, store, manager, pod_cidr, enforcement)
        runner = await serve_unix(build_app(service, hub), config.socket)
        log.info(
            "agent for node %s serving on %s (pod CIDR %s, %d endpoints restored)",
            config.node,
            config.socket,
            pod_cidr,
            len(manager.endpoints()),
        )
        routes = NodeRoutes(config.node)
        context = AgentContext(config, store, manager, kernel, enforcement, hub, service)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(
                        run_informer(store, "Node", routes.on_sync, routes.on_event),
                        name="node-routes-informer",
                    ),
                    tg.create_task(routes.resync_forever(), name="node-routes-resync"),
                    tg.create_task(
                        run_cluster_informer(store, enforcement.on_sync, enforcement.on_event),
                        name="cluster-informer",
                    ),
                    tg.create_task(enforcement.run(), name="regeneration"),
                ]
                tasks += [
                    tg.create_task(component(context), name=component.__name__)
                    for component in components()
                ]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await runner.cleanup()
            if config.socket.is_socket():
                config.socket.unlink()
            kernel.close()  # pins, maps and attachments stay: enforcement goes on
        return 0
    finally:
        await store.close()


@dataclasses.dataclass(frozen=True)
class AgentContext:
    """What an agent component gets: the running agent's parts."""

    config: AgentConfig
    store: Store
    manager: EndpointManager
    kernel: KernelDatapath
    enforcement: Enforcement
    hub: EventHub
    service: AgentService
    # What components add to this node's entry; nodelease writes it.
    node_entry: nodelease.NodeEntry = dataclasses.field(default_factory=nodelease.NodeEntry)


Component = Callable[[AgentContext], Coroutine[Any, Any, None]]


def components() -> list[Component]:
    """The agent's optional subsystems (services, overlay, observer, metrics, health...).

    Each runs as one task beside the core ones until the agent stops (it is
    cancelled then); a component that fails stops the agent. Imported here so
    each stays in its own module and the core knows none of them.
    """
    from axoneme.agent import ctgc, health, ippools, loadbalancer, metrics, routing, tcpretrans
    from axoneme.observer import agent as observer

    return [
        metrics.run,
        nodelease.run,
        ippools.run,
        routing.run,
        ctgc.run,
        health.run,
        observer.run,
        loadbalancer.run,
        tcpretrans.run,
    ]


def event_json(event: DatapathEvent) -> dict[str, object]:
    return {
        **dataclasses.asdict(event),
        "typeName": event.type_name,
        "verdictName": event.verdict_name,
        "direction": event.direction,
        "reasonName": event.reason_name if event.reason else "",
        "reasonText": reasons.describe(event.reason) if event.reason else "",
        "ctState": event.ct_state_name,
        "summary": event.summary(),
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sys.exit(asyncio.run(run(config)))


if __name__ == "__main__":
    main()
