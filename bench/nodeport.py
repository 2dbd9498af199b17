"""NodePort from an external client: Axoneme's tc path vs its XDP path vs kube-proxy.

The reference document's NodePort table: a client outside the cluster makes
sequential TCP connections (connect, 1-byte request, 1-byte answer, close) to
``node1:NODEPORT``, with the backend on node1 itself ("local") or on node2
("remote": SNAT to node1 and back). Datapaths, on the same topology:

- ``direct``: the client straight to the backend pod (routed by node1), no service;
- ``axoneme-tc``: ``bpf_host.o`` as tc ingress/egress on node1's ``eth0``;
- ``axoneme-xdp``: the same plus ``bpf_xdp.o`` in native XDP (``--nodeport-acceleration
  native``); the XDP program's counters are reported, to show it served the packets;
- ``axoneme-dsr``: tc in DSR mode (``--bpf-lb-mode dsr``), ``bpf_host.o`` on node2 too,
  which restores the frontend; replies go from node2 straight to the client;
- ``iptables-nft`` / ``iptables-legacy``: kube-proxy's iptables-mode NodePort rules
  (``suite/kubeproxy.py``) in node1's tables, MASQUERADE included.

Topology (all in ``axb-np-*`` namespaces, addresses only on links made here): a
switch namespace with a bridge and three ports (GRO on and complete checksums on
the wire, which XDP forwarding on a veth needs: ``kit/ethtool.py``), the client
10.86.0.100, node1 10.86.0.1 and node2 10.86.0.2 on it; a pod namespace behind
each node (10.87.1.2 on node1, 10.87.2.2 on node2) with a server. Rounds rotate
the order of the datapaths; a row is the median over rounds of each round's median.
Timings are never asserted: the results are data.

Run as root: ``.venv/bin/python bench/nodeport.py [--quick] [--out DIR]``; writes
``nodeport.json`` (rows ``{scenario, datapath, metric, median, unit, runs,
samples}``, the ``bench/run.py`` family format) and ``nodeport.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from service_lb import CLIENT, SERVER, in_ns, latency_rows, rows_markdown, sh
from suite.kubeproxy import Service, ServicePort, restore_input

from axoneme.datapath.linux import bpfsys, hostlb, libbpf, xdplb
from axoneme.datapath.linux.lbwriter import LBWriter
from axoneme.datapath.linux.loader import Datapath
from axoneme.kit.ethtool import set_gro, set_tx_csum
from axoneme.kit.netns import entered
from axoneme.loadbalancer.state import BackendAddr, Frontend

SWITCH, CLIENT_NS = "axb-np-sw", "axb-np-client"
NODES = {"node1": "axb-np-node1", "node2": "axb-np-node2"}
PODS = {"node1": "axb-np-pod1", "node2": "axb-np-pod2"}
BRIDGE = "axbnpbr"
PORTS = {CLIENT_NS: "axbnp-c", NODES["node1"]: "axbnp-n1", NODES["node2"]: "axbnp-n2"}
ADDR = {CLIENT_NS: "10.86.0.100", NODES["node1"]: "10.86.0.1", NODES["node2"]: "10.86.0.2"}
POD_NET = {"node1": "10.87.1", "node2": "10.87.2"}
PORT = 8080
NODE_PORTS = {"local": 30001, "remote": 30002}
BACKEND = {"local": "node1", "remote": "node2"}
PIN_DIR = Path("/sys/fs/bpf/axb-np")
PIN_DIR2 = Path("/sys/fs/bpf/axb-np-node2")  # node2's bpf_host.o, for DSR's return path
LOCK = Path("/run/axb-bench.lock")
MARK = "AXB_BENCH=nodeport"
DATAPATHS = [
    "direct",
    "axoneme-tc",
    "axoneme-xdp",
    "axoneme-dsr",
    "iptables-nft",
    "iptables-legacy",
]


def pod_ip(node: str) -> str:
    return f"{POD_NET[node]}.2"


def _env() -> dict[str, str]:
    key, value = MARK.split("=")
    return {**os.environ, key: value}


# ---- topology ------------------------------------------------------------------------


def cleanup() -> None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ProcessLookupError):
                if MARK.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
    for ns in [SWITCH, CLIENT_NS, *NODES.values(), *PODS.values()]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    for pins in (PIN_DIR, PIN_DIR2):
        if pins.exists():
            Datapath.remove(pins)


def setup() -> list[subprocess.Popen[str]]:
    for ns in [SWITCH, CLIENT_NS, *NODES.values(), *PODS.values()]:
        sh("ip", "netns", "add", ns)
        sh(*in_ns(ns, "ip", "link", "set", "lo", "up"))
    sh(*in_ns(SWITCH, "ip", "link", "add", BRIDGE, "type", "bridge"))
    sh(*in_ns(SWITCH, "ip", "link", "set", BRIDGE, "up"))
    for ns, port in PORTS.items():
        sh(*in_ns(SWITCH, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                  "netns", ns))  # fmt: skip
        sh(*in_ns(SWITCH, "ip", "link", "set", port, "master", BRIDGE, "up"))
        # As the lab with acceleration (kit/ethtool.py): the port's NAPI queue takes
        # XDP_REDIRECT frames, and the underlay carries complete checksums.
        set_gro(SWITCH, port, True)
        set_tx_csum(ns, "eth0", False)
        sh(*in_ns(ns, "ip", "addr", "add", f"{ADDR[ns]}/24", "dev", "eth0"))
        sh(*in_ns(ns, "ip", "link", "set", "eth0", "up"))
    for node, ns in NODES.items():
        pod, net = PODS[node], POD_NET[node]
        sh(*in_ns(ns, "ip", "link", "add", "pod0", "type", "veth", "peer", "name", "eth0",
                  "netns", pod))  # fmt: skip
        sh(*in_ns(ns, "ip", "addr", "add", f"{net}.1/24", "dev", "pod0"))
        sh(*in_ns(ns, "ip", "link", "set", "pod0", "up"))
        sh(*in_ns(pod, "ip", "addr", "add", f"{net}.2/24", "dev", "eth0"))
        sh(*in_ns(pod, "ip", "link", "set", "eth0", "up"))
        sh(*in_ns(pod, "ip", "route", "add", "default", "via", f"{net}.1"))
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"):
            sh(*in_ns(ns, "sysctl", "-qw", key))
    sh(*in_ns(NODES["node1"], "ip", "route", "add", "10.87.2.0/24", "via", ADDR[NODES["node2"]]))
    sh(*in_ns(NODES["node2"], "ip", "route", "add", "10.87.1.0/24", "via", ADDR[NODES["node1"]]))
    # Only for "direct": the client reaches the pods through node1.
    sh(*in_ns(CLIENT_NS, "ip", "route", "add", "10.87.0.0/16", "via", ADDR[NODES["node1"]]))
    servers = []
    for node, pod in PODS.items():
        server = subprocess.Popen(
            in_ns(pod, sys.executable, "-c", SERVER, pod_ip(node)),
            stdout=subprocess.PIPE, text=True, env=_env(),
        )  # fmt: skip
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the server in {pod} did not start")
        servers.append(server)
    return servers


def latency(ip: str, port: int, n: int, warm: int) -> list[float]:
    """Connection latencies (µs) of a client in the client namespace."""
    cmd = in_ns(CLIENT_NS, sys.executable, "-c", CLIENT, ip, str(port), str(n), str(warm))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600, env=_env())
    return [float(x) for x in json.loads(out.stdout)]


# ---- datapaths ---------------------------------------------------------------------------


def frontends() -> list[Frontend]:
    node1 = ADDR[NODES["node1"]]
    out = []
    for scenario, port in NODE_PORTS.items():
        node = BACKEND[scenario]
        backends = (BackendAddr(pod_ip(node), PORT, "TCP", node=node),)
        out.append(
            Frontend(
                node1, port, "TCP", "NodePort", f"bench/{scenario}", "http", backends, backends
            )
        )
    return out


def kube_proxy_rules() -> str:
    return restore_input(
        [
            Service("bench", scenario, f"10.96.0.{i + 1}",
                    (ServicePort("http", 80, "TCP", PORT, node_port=port),),
                    (pod_ip(BACKEND[scenario]),))
            for i, (scenario, port) in enumerate(NODE_PORTS.items())
        ],
        "10.87.0.0/16",
    )  # fmt: skip


def eth0_ifindex(node: str) -> int:
    out = json.loads(sh("ip", "-n", NODES[node], "-j", "link", "show", "eth0"))
    return int(out[0]["ifindex"])


def load_axoneme() -> None:
    """bpf_host.o and bpf_xdp.o loaded and pinned, node1's frontends written."""
    hostlb.load(PIN_DIR)
    hostlb.set_node_ip(PIN_DIR, ADDR[NODES["node1"]])
    xdplb.load(PIN_DIR)
    hostlb.load(PIN_DIR2)
    hostlb.set_node_ip(PIN_DIR2, ADDR[NODES["node2"]])
    writer = LBWriter.open(PIN_DIR)
    try:
        writer.sync(frontends(), 16381, "node1")
    finally:
        writer.close()


@contextlib.contextmanager
def axoneme(xdp: bool = False, dsr: bool = False) -> Iterator[None]:
    ifindex, ifindex2 = eth0_ifindex("node1"), eth0_ifindex("node2")
    # Each datapath starts without flows: a client port reused from another mode's
    # run would otherwise follow that mode's NAT entry.
    for pins in (PIN_DIR, PIN_DIR2):
        with bpfsys.BpfMap.open_pinned(pins / "axo_lb_nat") as nat:
            nat.clear()
    hostlb.set_mode(PIN_DIR, dsr)
    with entered(f"/run/netns/{NODES['node1']}"):
        hostlb.attach(PIN_DIR, ifindex)
        if xdp:
            xdplb.attach(PIN_DIR, ifindex)
    if dsr:
        with entered(f"/run/netns/{NODES['node2']}"):
            hostlb.attach(PIN_DIR2, ifindex2)
    try:
        yield
    finally:
        with entered(f"/run/netns/{NODES['node1']}"):
            xdplb.detach(ifindex)
            hostlb.detach(ifindex)
            libbpf.tc_hook_destroy(ifindex)
        if dsr:
            with entered(f"/run/netns/{NODES['node2']}"):
                hostlb.detach(ifindex2)
                libbpf.tc_hook_destroy(ifindex2)


@contextlib.contextmanager
def kube_proxy(tool: str) -> Iterator[None]:
    sh(*in_ns(NODES["node1"], f"{tool}-restore"), stdin=kube_proxy_rules())
    try:
        yield
    finally:
        for table in ("nat", "filter"):
            sh(*in_ns(NODES["node1"], tool, "-t", table, "-F"))
            sh(*in_ns(NODES["node1"], tool, "-t", table, "-X"))


def measure(dp: str, scenario: str, conns: int, warm: int) -> list[float]:
    node1 = ADDR[NODES["node1"]]
    if dp == "direct":
        return latency(pod_ip(BACKEND[scenario]), PORT, conns, warm)
    if dp.startswith("axoneme"):
        ctx = axoneme(xdp=dp == "axoneme-xdp", dsr=dp == "axoneme-dsr")
    else:
        ctx = kube_proxy(dp)
    with ctx:
        return latency(node1, NODE_PORTS[scenario], conns, warm)


def run(rounds: int, conns: int) -> dict[str, Any]:
    samples: dict[tuple[str, str, str, str], list[float]] = {}
    warm = max(conns // 20, 10)
    xdp_before = xdplb.stats(PIN_DIR)
    for r in range(rounds):
        order = DATAPATHS[r % len(DATAPATHS) :] + DATAPATHS[: r % len(DATAPATHS)]
        for scenario in NODE_PORTS:
            for dp in order:
                lat = measure(dp, scenario, conns, warm)
                key = f"nodeport-{scenario}-backend"
                p99 = sorted(lat)[int(len(lat) * 0.99) - 1]
                samples.setdefault((key, dp, "connect_rr_p50", "us"), []).append(
                    statistics.median(lat)
                )
                samples.setdefault((key, dp, "connect_rr_p99", "us"), []).append(p99)
    xdp_after = xdplb.stats(PIN_DIR)
    rows = latency_rows(samples)
    served = {k: v - asdict(xdp_before)[k] for k, v in asdict(xdp_after).items()}
    return {
        "rows": rows,
        "config": {"rounds": rounds, "connections": conns},
        "xdp_packets": served,
    }


def markdown(report: dict[str, Any]) -> str:
    return rows_markdown(
        "NodePort from an external client: tc vs XDP vs kube-proxy iptables",
        f"config: {json.dumps(report['config'])}; packets the XDP program handled over the "
        f"run: {json.dumps(report['xdp_packets'])}",
        report["rows"],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round of 300 connections")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=2000)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        p.error("run as root")
    if args.rounds < 1 or args.connections < 20:
        p.error("--rounds must be >= 1 and --connections >= 20")
    rounds = 1 if args.quick else args.rounds
    conns = 300 if args.quick else args.connections
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cleanup()
        servers: list[subprocess.Popen[str]] = []
        try:
            servers = setup()
            load_axoneme()
            report = run(rounds, conns)
        finally:
            for server in servers:
                server.kill()
                server.wait()
            cleanup()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nodeport.json").write_text(json.dumps(report, indent=1))
    (args.out / "nodeport.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
