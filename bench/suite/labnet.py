"""The Axoneme datapaths: a 2-node ``axoneme lab`` in a given routing mode, with the
matrix's pods and Services deployed through the CLI as a user would.

Pods (namespace ``axoneme-bench``): ``client`` and ``server-same`` on node1,
``server-other`` on node2, each running the lab's workload (on no port: qperf binds the
ports). Services ``qperf-same`` / ``qperf-other``, type NodePort, select one server each
and forward its qperf ports with port = targetPort = nodePort. The ClusterIPs have no
owner anywhere, and nothing listens on a node's NodePort, so a qperf run that gets through
proves the translation happened.

A mode the tree cannot build yet (no ``LabConfig.routing_mode`` / ``host_routing``, or a
value it refuses) is reported as not available with the reason; so are the Service flows
when ``axoneme apply`` refuses a Service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, cast

from axoneme.cli.context import open_store
from axoneme.lab import control
from axoneme.lab.topology import (
    WORLD_NETNS,
    LabConfig,
    NodePlan,
    bpf_pin_dir,
    node_cgroup,
    node_plans,
    pod_netns,
)
from axoneme.store.types import Key
from suite.flows import PORTS_OTHER, PORTS_SAME, Env
from suite.qperf import Ports

NAMESPACE = "axoneme-bench"
# datapath -> the LabConfig fields it needs; the first value is what the field must accept.
MODES: Mapping[str, Mapping[str, str]] = {
    "axoneme-tunnel": {"routing_mode": "tunnel", "host_routing": "legacy"},
    "axoneme-native": {"routing_mode": "native", "host_routing": "legacy"},
    "axoneme-host-routing": {"routing_mode": "native", "host_routing": "bpf"},
}
PODS = (("client", "node1"), ("server-same", "node1"), ("server-other", "node2"))
SERVICES = (("qperf-same", "server-same", PORTS_SAME), ("qperf-other", "server-other", PORTS_OTHER))


class LabNetError(Exception):
    """The lab or its workloads did not come up."""


def lab_config(datapath: str) -> LabConfig | str:
    """The lab configuration for ``datapath``, or why the tree cannot build it yet."""
    fields = {f.name for f in dataclasses.fields(LabConfig)}
    wanted = dict(MODES[datapath])
    absent = [name for name in wanted if name not in fields]
    if datapath == "axoneme-native" and absent == list(wanted):
        # Before routing modes existed the lab had one: kernel routes between nodes,
        # programs on the pod veths; that is native routing with legacy host routing.
        return LabConfig(nodes=2)
    if absent:
        return (
            f"LabConfig has no {', '.join(absent)} "
            "(the routing modes of issue 5 are not in the tree yet)"
        )
    config = LabConfig(nodes=2, **cast(dict[str, Any], wanted))
    try:
        config.validate()
    except ValueError as exc:
        return f"the lab refuses this mode: {exc}"
    return config


def describe(config: LabConfig) -> str:
    values = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name in ("routing_mode", "host_routing")
    }
    if not values:
        return "axoneme lab (kernel routes between nodes; programs on the pod veths)"
    return "axoneme lab " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in values.items())


def ax(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axoneme.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _manifest(items: list[dict[str, Any]]) -> str:
    return "\n---\n".join(json.dumps(i) for i in items)


def pods_manifest() -> str:
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    ]
    for name, node in PODS:
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": name}},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "main", "image": "axoneme/workload"}],
                },
            }
        )
    return _manifest(items)


def _service_ports(ports: Ports) -> list[dict[str, Any]]:
    c, d = ports.control, ports.data
    return [
        {"name": "control", "protocol": "TCP", "port": c, "targetPort": c, "nodePort": c},
        {"name": "data", "protocol": "TCP", "port": d, "targetPort": d, "nodePort": d},
        {"name": "data-udp", "protocol": "UDP", "port": d, "targetPort": d, "nodePort": d},
    ]


def services_manifest() -> str:
    return _manifest(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "type": "NodePort",
                    "selector": {"bench": server},
                    "ports": _service_ports(ports),
                },
            }
            for name, server, ports in SERVICES
        ]
    )


def _wait_pods(timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        proc = ax("get", "pods", "-n", NAMESPACE, "-o", "json")
        items = json.loads(proc.stdout)["items"] if proc.returncode == 0 else []
        pods = {p["metadata"]["name"]: p for p in items}
        if all(
            pods.get(n, {}).get("status", {}).get("phase") == "Running"
            and pods[n]["status"].get("podIP")
            for n, _ in PODS
        ):
            return pods
        if time.monotonic() > deadline:
            states = {n: p.get("status", {}) for n, p in pods.items()}
            raise LabNetError(f"bench pods not running after {timeout:.0f} s: {states}")
        time.sleep(0.2)


async def _cluster_ips() -> dict[str, str]:
    store = open_store()
    try:
        found = {}
        for name, _, _ in SERVICES:
            svc = await store.get(Key("Service", NAMESPACE, name))
            ip = (svc or {}).get("spec", {}).get("clusterIP")
            if ip and ip != "None":
                found[name] = str(ip)
        return found
    finally:
        await store.close()


def up(config: LabConfig) -> Env:
    """A fresh lab in ``config``'s mode with the bench's pods (and Services, if accepted)."""
    control.down(grace=5.0)
    control.up(config)
    applied = ax("apply", "-f", "-", stdin=pods_manifest())
    if applied.returncode != 0:
        raise LabNetError(f"axoneme apply (pods): {applied.stderr.strip()[-400:]}")
    svc = ax("apply", "-f", "-", stdin=services_manifest())
    pods = _wait_pods()
    plans = {p.name: p for p in node_plans(config)}
    netns = {
        "node1": f"/run/netns/{plans['node1'].netns}",
        "node2": f"/run/netns/{plans['node2'].netns}",
        "world": f"/run/netns/{WORLD_NETNS}",
    }
    targets = {"node2": plans["node2"].ip}
    for name, _ in PODS:
        meta = pods[name]["metadata"]
        netns[name] = f"/run/netns/{pod_netns(meta['namespace'], meta['name'], meta['uid'])}"
        targets[name] = pods[name]["status"]["podIP"]
    cgroups = {
        name: str(node_cgroup(plans[node]))
        for name, node in PODS
        if node_cgroup(plans[node]).is_dir()
    }
    missing: dict[str, str] = {}
    if svc.returncode != 0:
        reason = (svc.stderr.strip().splitlines() or ["refused"])[-1]
        reason = f"axoneme apply refuses the Services: {reason}"
        missing = {"svc-same": reason, "svc-other": reason, "nodeport": reason}
    else:
        ips = asyncio.run(_cluster_ips())
        clusterip = service_datapath(plans["node1"])
        for target, (name, _, _) in zip(("svc-same", "svc-other"), SERVICES, strict=True):
            if clusterip is not None:
                missing[target] = clusterip
            elif name in ips:
                targets[target] = ips[name]
            else:
                missing[target] = f"Service {NAMESPACE}/{name} has no ClusterIP"
        nodeport = nodeport_datapath(plans["node1"])
        if nodeport is None:
            targets["nodeport"] = plans["node1"].ip
        else:
            missing["nodeport"] = nodeport
    return Env(netns, targets, missing, detail=describe(config), cgroups=cgroups)


def _pins(plan: NodePlan) -> list[str]:
    pin_dir = bpf_pin_dir(plan)
    return sorted(p.name for p in pin_dir.iterdir()) if pin_dir.is_dir() else []


def service_datapath(plan: NodePlan) -> str | None:
    """Why ClusterIPs cannot be translated on this node (None: a service LB map is pinned)."""
    if any(name.startswith("axo_lb_svc") for name in _pins(plan)):
        return None
    return f"no service map (axo_lb_svc) pinned on {plan.name}: no service load balancer"


def nodeport_datapath(plan: NodePlan) -> str | None:
    """Why NodePorts cannot be served on this node (None: a NodePort program is pinned)."""
    if any(key in name for name in _pins(plan) for key in ("nodeport", "netdev", "xdp")):
        return None
    return (
        f"no NodePort program (tc or XDP on the node's device) pinned on {plan.name}: "
        "the NodePort datapath of issue 4 is not in the tree yet"
    )


def down() -> list[str]:
    """Remove the lab; what was still there afterwards (empty when clean)."""
    control.down(grace=10.0)
    left = control.leftovers()
    return [] if left.empty else [f"lab down left: {left}"]
