"""Identity propagation across nodes in a real 2-node lab.

A pod with labels no other pod has (so a new security identity) is written to the store
for node2, as ``axoneme apply`` writes it. From just before that write, a thread polls
both nodes' pinned ipcache maps (about every half millisecond) until the pod's address
appears in node2's pod CIDR with its identity: first on node2 (whose agent allocated the
identity and wired the pod), then on node1 (through the store). Three figures per pod:
write -> node2's ipcache, write -> node1's ipcache (the same identity), and the gap
between the two: the propagation.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from axoneme.cli.context import open_store
from axoneme.datapath.linux.maps import IPCacheMap
from axoneme.k8s.apply import new_object
from axoneme.lab import control
from axoneme.lab.topology import LabConfig, bpf_pin_dir, node_plans
from suite.labnet import NAMESPACE, LabNetError, ax
from suite.results import FamilyResult, row

FAMILY = "identity"
SCENARIO = "new pod identity, node2 -> node1"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Seen:
    ip: str
    identity: int
    local: float  # perf_counter when node2's ipcache had it
    remote: float  # ... node1's, with the same identity


def pod(name: str, label: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"idprop": label}},
        "spec": {
            "nodeName": "node2",
            "containers": [{"name": "main", "image": "axoneme/workload"}],
        },
    }


def _pod_entries(ipcache: IPCacheMap, cidr: ipaddress.IPv4Network) -> dict[str, int]:
    out = {}
    for prefix, value in ipcache.items():
        net = ipaddress.IPv4Network(prefix)
        if net.prefixlen == 32 and net.subnet_of(cidr):
            out[str(net.network_address)] = value.identity
    return out


def watch(
    local: IPCacheMap,
    remote: IPCacheMap,
    cidr: ipaddress.IPv4Network,
    before: set[str],
    deadline: float,
) -> Seen:
    """Poll both maps until a new pod address is in both with the same identity."""
    first: dict[str, tuple[int, float]] = {}
    while time.monotonic() < deadline:
        for ip, identity in _pod_entries(local, cidr).items():
            if ip not in before and ip not in first:
                first[ip] = (identity, time.perf_counter())
        if first:
            ip, (identity, t_local) = next(iter(first.items()))
            value = remote.lookup(ip)
            if value is not None and value.identity == identity:
                return Seen(ip, identity, t_local, time.perf_counter())
        time.sleep(0.0005)
    if first:
        raise LabNetError(f"node1's ipcache never mapped {next(iter(first))} to its identity")
    raise LabNetError("the new pod never appeared in node2's ipcache")


async def _create(obj: dict[str, Any]) -> None:
    store = open_store()
    try:
        await store.create(new_object(obj))
    finally:
        await store.close()


def run(pods: int, say: Say) -> FamilyResult:
    config = LabConfig(nodes=2)
    plans = {p.name: p for p in node_plans(config)}
    cidr = ipaddress.IPv4Network(plans["node2"].pod_cidr)
    control.down(grace=5.0)
    control.up(config)
    local: list[float] = []
    remote: list[float] = []
    gap: list[float] = []
    try:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        made = ax("apply", "-f", "-", stdin=json.dumps(ns))
        if made.returncode != 0:
            raise LabNetError(f"axoneme apply (namespace): {made.stderr.strip()[-300:]}")
        with (
            IPCacheMap.open(bpf_pin_dir(plans["node1"])) as node1,
            IPCacheMap.open(bpf_pin_dir(plans["node2"])) as node2,
            ThreadPoolExecutor(max_workers=1) as pool,
        ):
            for i in range(pods):
                before = set(_pod_entries(node2, cidr))
                deadline = time.monotonic() + 30
                watcher = pool.submit(watch, node2, node1, cidr, before, deadline)
                start = time.perf_counter()
                asyncio.run(_create(pod(f"idprop-{i}", f"p{i}-{secrets.token_hex(4)}")))
                seen = watcher.result()
                local.append((seen.local - start) * 1e3)
                remote.append((seen.remote - start) * 1e3)
                gap.append((seen.remote - seen.local) * 1e3)
                say(
                    f"  pod {i + 1}/{pods} {seen.ip} identity {seen.identity}: node2 "
                    f"{local[-1]:.1f} ms, node1 {remote[-1]:.1f} ms after the write "
                    f"({gap[-1]:.1f} ms between)"
                )
    finally:
        control.down(grace=10.0)
    out = FamilyResult()
    for metric, values in (
        ("write_to_local_ipcache_ms", local),
        ("write_to_remote_ipcache_ms", remote),
        ("local_to_remote_ms", gap),
    ):
        out.rows.append(row(FAMILY, SCENARIO, "axoneme-lab", metric, "ms", values))
    out.notes.append(
        "each pod has labels no other pod has, so node2's agent allocates a new identity; "
        "both nodes' pinned ipcache maps are polled every ~0.5 ms from just before the pod "
        "is written to the store (the lab's etcd)"
    )
    return out
