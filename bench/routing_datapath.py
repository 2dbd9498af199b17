"""Routing and host routing on the data path: same-node local delivery and cross-node pods.

One topology, built once, where only the datapath's mode changes between
measurements (so the modes are interleaved round by round on identical links):

    axb-r-n1 (node 1, 172.31.0.1)  ==== veth underlay ====  axb-r-n2 (node 2, 172.31.0.2)
      pods axb-r-a 10.88.1.10, axb-r-b 10.88.1.11              pod axb-r-c 10.88.2.10

Pods are wired as the agent wires them (``netdev.create_endpoint_link``) and each
node loads Axoneme's programs into its own pin directory (``/sys/fs/bpf/axb-routing``);
every endpoint enforces ingress and egress with a policy that allows the flow, so
each packet pays conntrack + policy. Kernel routes join the pod CIDRs (native),
and each node has the VXLAN collect_md device with ``from_overlay`` (tunnel).

Same node (a -> b): ``none`` (no program: the limit), ``policy+stack`` (host
routing legacy), ``policy+redirect_peer`` (host routing bpf).
Cross node (a -> c): ``node-to-node`` (qperf between the nodes' underlay
addresses), ``none`` (kernel routing, no program), ``native+legacy``,
``native+bpf`` (FIB + redirect_neigh), ``tunnel+legacy``, ``tunnel+bpf``
(overlay delivers with redirect_peer). Tunnel setups give the pods MTU 1450.

Each setup runs ``qperf -t N -ub -oo msg_size:4K -vu tcp_lat tcp_bw udp_lat udp_bw``
and, for the retransmit question, ``iperf3 -t N`` with the client's and server's
TCP counters (``/proc/net/snmp``, ``/proc/net/netstat`` of their netns) before and
after. Rows are medians over the rounds with min and max.

Run as root: ``.venv/bin/python bench/routing_datapath.py [--quick] [--out DIR]``;
from another script: ``routing_datapath.run_bench(rounds=3, seconds=5, out=DIR)``.
Serialised with the other benchmarks by ``flock`` on ``/run/axb-bench.lock``.
Everything (netns, pins, processes) is removed on every exit path.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axoneme.datapath.linux import netdev
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import (
    CFG_HOST_ROUTING_BPF,
    CFG_TUNNEL,
    DatapathConfig,
    MetricsMap,
    PolicyKey,
    PortsKey,
    PortsValue,
    lxc_flags,
)
from axoneme.datapath.linux.writer import KernelDatapath
from axoneme.datapath.types import IPCacheEntry, LxcEntry
from axoneme.kit.netns import entered

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"
PREFIX = "axb-r-"
PIN_ROOT = Path("/sys/fs/bpf/axb-routing")
LOCK_FILE = Path("/run/axb-bench.lock")
QPERF_LISTEN, QPERF_DATA, IPERF_PORT = 19765, 19766, 19767
QPERF_TESTS = ("tcp_lat", "tcp_bw", "udp_lat", "udp_bw")
COLUMNS = ("tcp_lat", "udp_lat", "tcp_bw", "udp_bw", "iperf3", "retransmits", "iperf3_pinned",
           "retransmits_pinned")  # fmt: skip
UNITS = {"tcp_lat": "us", "udp_lat": "us", "tcp_bw": "Mb/s", "udp_bw": "Mb/s", "iperf3": "Mb/s"}
# TCP counters that explain retransmits (client side unless noted in the name).
TCP_COUNTERS = (
    "RetransSegs", "TCPLostRetransmit", "TCPFastRetrans", "TCPSlowStartRetrans",
    "TCPLossProbes", "TCPSpuriousRtxHostQueues", "TCPSACKReorder", "TCPTSReorder",
    "TCPDSACKRecv", "TCPTimeouts", "TCPBacklogDrop", "TCPRcvQDrop", "TCPOFOQueue",
    "TCPOFODrop", "TCPZeroWindowDrop", "TCPRcvCollapsed", "TCPRcvPruned",
)  # fmt: skip

NODES = {"n1": "172.31.0.1", "n2": "172.31.0.2"}
PODS = {  # name: (node, ip, identity, ep_id)
    "a": ("n1", "10.88.1.10", 1001, 11),
    "b": ("n1", "10.88.1.11", 1002, 12),
    "c": ("n2", "10.88.2.10", 1003, 13),
}
CIDRS = {"n1": "10.88.1.0/24", "n2": "10.88.2.0/24"}
ROUTER = {"n1": "10.88.1.1", "n2": "10.88.2.1"}
ALLOW_ALL_SET = 1


@dataclass(frozen=True)
class Setup:
    scenario: str  # same-node | cross-node
    name: str
    programs: bool
    flags: int = 0
    mtu: int = 1500


SETUPS = (
    Setup("same-node", "none", False),
    Setup("same-node", "policy+stack", True),
    Setup("same-node", "policy+redirect_peer", True, CFG_HOST_ROUTING_BPF),
    Setup("cross-node", "node-to-node", False),
    Setup("cross-node", "none", False),
    Setup("cross-node", "native+legacy", True),
    Setup("cross-node", "native+bpf", True, CFG_HOST_ROUTING_BPF),
    Setup("cross-node", "tunnel+legacy", True, CFG_TUNNEL, 1450),
    Setup("cross-node", "tunnel+bpf", True, CFG_TUNNEL | CFG_HOST_ROUTING_BPF, 1450),
)


class BenchError(Exception):
    pass


def ns(name: str) -> str:
    return f"/run/netns/{PREFIX}{name}"


def sh(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def sysctl(node: str, key: str, value: str) -> None:
    with entered(ns(node)), open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
        f.write(value)


# ---- topology ---------------------------------------------------------------------


@dataclass
class Topology:
    kernels: dict[str, KernelDatapath]
    host_ifindex: dict[str, int]  # pod -> its host veth's ifindex (in its node)
    entries: dict[str, LxcEntry]


def cleanup() -> list[str]:
    problems = []
    for pid in _our_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for name in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
        if name.startswith(PREFIX):
            sh("ip", "netns", "del", name, check=False)
            if os.path.exists(f"/run/netns/{name}"):
                problems.append(f"netns {name} is left")
    if PIN_ROOT.exists():
        Datapath.remove(PIN_ROOT)
    return problems


def _our_pids() -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if b"AXB_BENCH=routing_datapath" in Path(f"/proc/{pid}/environ").read_bytes():
                out.append(int(pid))
    return out


def build() -> Topology:
    for name in [*NODES, *PODS]:
        sh("ip", "netns", "add", f"{PREFIX}{name}")
    # The underlay: one veth between the two node namespaces.
    sh("ip", "-n", f"{PREFIX}n1", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
       "netns", f"{PREFIX}n2")  # fmt: skip
    for node, ip in NODES.items():
        sh("ip", "-n", f"{PREFIX}{node}", "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", f"{PREFIX}{node}", "link", "set", "eth0", "up")
        sh("ip", "-n", f"{PREFIX}{node}", "link", "set", "lo", "up")
        for key in ("net.ipv4.ip_forward",):
            sysctl(node, key, "1")
        for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
            sysctl(node, key, "0")
    sh("ip", "-n", f"{PREFIX}n1", "route", "add", CIDRS["n2"], "via", NODES["n2"])
    sh("ip", "-n", f"{PREFIX}n2", "route", "add", CIDRS["n1"], "via", NODES["n1"])
    kernels: dict[str, KernelDatapath] = {}
    tunnels: dict[str, int] = {}
    for node in NODES:
        kernels[node] = KernelDatapath(Datapath.open(PIN_ROOT / node))
        with entered(ns(node)):
            netdev.ensure_host_device(ROUTER[node])
            tunnels[node] = netdev.ensure_vxlan_device()
            kernels[node].attach_overlay(tunnels[node])
        kernels[node].set_config(DatapathConfig(0, tunnels[node]))
    host_ifindex: dict[str, int] = {}
    entries: dict[str, LxcEntry] = {}
    for pod, (node, ip, identity, ep_id) in PODS.items():
        with entered(ns(node)):
            link = netdev.create_endpoint_link(
                netns=ns(pod), ifname="eth0", host_ifname=f"lxc{pod}", address=ip,
                router_ip=ROUTER[node],
            )  # fmt: skip
        host_ifindex[pod] = link.host_ifindex
        flags = lxc_flags(ingress_enforced=True, egress_enforced=True)
        entries[pod] = LxcEntry(ep_id, identity, ip, flags, link.pod_mac, link.host_mac)
        kernels[node].set_endpoint(link.host_ifindex, entries[pod])
        # Enforced both ways, with a policy that allows any peer on anything.
        for direction in (0, 1):
            kernels[node].dp.policy.set(PolicyKey(0, ep_id, direction), ALLOW_ALL_SET)
    for node, kd in kernels.items():
        kd.dp.ports.set(PortsKey(ALLOW_ALL_SET, 32, 0, 0), PortsValue(1, 0, ALLOW_ALL_SET))
        table = {f"{NODES[node]}/32": IPCacheEntry(1)}
        table.update({f"{ip}/32": IPCacheEntry(6) for n, ip in NODES.items() if n != node})
        for _, (pnode, ip, identity, _) in PODS.items():
            table[f"{ip}/32"] = IPCacheEntry(identity, "0.0.0.0" if pnode == node else NODES[pnode])
        kd.sync_ipcache(table)
    return Topology(kernels, host_ifindex, entries)


def apply(setup: Setup, topo: Topology) -> None:
    """Switch the datapath to the setup: programs on or off, mode flags, pod MTU."""
    for pod, (node, *_rest) in PODS.items():
        kd = topo.kernels[node]
        with entered(ns(node)):
            if setup.programs:
                kd.attach(topo.host_ifindex[pod])
            else:
                kd.dp.detach(topo.host_ifindex[pod])
            sh("ip", "link", "set", f"lxc{pod}", "mtu", str(setup.mtu))
        sh("ip", "-n", f"{PREFIX}{pod}", "link", "set", "eth0", "mtu", str(setup.mtu))
    for kd in topo.kernels.values():
        kd.set_config(DatapathConfig(setup.flags, kd.dp.config.get().tunnel_ifindex))
        kd.dp.ct.flush()


# ---- measurement --------------------------------------------------------------------


def endpoints(setup: Setup) -> tuple[str, str, str]:
    """(client netns, server netns, server address) of the setup's flow."""
    if setup.scenario == "same-node":
        return "a", "b", PODS["b"][1]
    if setup.name == "node-to-node":
        return "n1", "n2", NODES["n2"]
    return "a", "c", PODS["c"][1]


@contextlib.contextmanager
def server(netns: str, *cmd: str) -> Iterator[None]:
    env = {**os.environ, "AXB_BENCH": "routing_datapath"}
    proc = subprocess.Popen(
        ["ip", "netns", "exec", f"{PREFIX}{netns}", *cmd],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        if proc.poll() is not None:
            raise BenchError(f"{cmd[0]} server exited {proc.returncode}")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


_LAT = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "sec": 1e6}
_BW = {"Kb/sec": 1e-3, "Mb/sec": 1.0, "Gb/sec": 1e3}


def parse_qperf(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    test = ""
    for line in text.splitlines():
        if re.fullmatch(r"\w+:", line.strip()):
            test = line.strip()[:-1]
            continue
        m = re.match(r"\s*(\w+)\s*=\s*([\d.,]+)\s*(\S+)", line)
        if not m:
            continue
        name, value, unit = m.group(1), float(m.group(2).replace(",", "")), m.group(3)
        if name == "latency" and unit in _LAT:
            out[test] = value * _LAT[unit]
        elif unit in _BW and (test, name) in (("tcp_bw", "bw"), ("udp_bw", "recv_bw")):
            out[test] = value * _BW[unit]
    return out


def qperf(setup: Setup, seconds: int) -> dict[str, float]:
    client, srv, ip = endpoints(setup)
    with server(srv, "qperf", "--listen_port", str(QPERF_LISTEN)):
        proc = sh(
            "ip", "netns", "exec", f"{PREFIX}{client}", "qperf", "--listen_port",
            str(QPERF_LISTEN), "--ip_port", str(QPERF_DATA), "-t", str(seconds), ip, "-ub",
            "-oo", "msg_size:4K", "-vu", *QPERF_TESTS, check=False, timeout=seconds * 8 + 60,
        )  # fmt: skip
    values = parse_qperf(proc.stdout)
    if set(values) != set(QPERF_TESTS):
        raise BenchError(f"qperf ({setup.name}): {(proc.stdout + proc.stderr)[-600:]}")
    return values


def tcp_counters(netns: str) -> dict[str, int]:
    """The netns's TCP MIB counters (Tcp: and TcpExt: lines)."""
    out: dict[str, int] = {}
    with entered(ns(netns)):
        for table in ("snmp", "netstat"):
            lines = Path(f"/proc/thread-self/net/{table}").read_text().splitlines()
            for head, values in zip(lines[::2], lines[1::2], strict=True):
                if head.startswith(("Tcp:", "TcpExt:")):
                    names, nums = head.split()[1:], values.split()[1:]
                    out.update({k: int(v) for k, v in zip(names, nums, strict=True)})
    return out


def iperf(setup: Setup, seconds: int, pinned: bool = False) -> dict[str, Any]:
    """iperf3 and the TCP counters it moved. ``pinned``: client and server both on
    CPU 0, so every segment (also those TCP sends from the softirq that handles an
    ACK) is queued to one CPU's backlog: no reordering between CPUs is possible."""
    client, srv, ip = endpoints(setup)
    with server(srv, "iperf3", "-s", "-p", str(IPERF_PORT)):
        before = {side: tcp_counters(n) for side, n in (("client", client), ("server", srv))}
        proc = sh(
            "ip", "netns", "exec", f"{PREFIX}{client}", "iperf3", "-c", ip, "-p", str(IPERF_PORT),
            "-t", str(seconds), "-J", *(["-A", "0,0"] if pinned else []), check=False,
            timeout=seconds + 60,
        )  # fmt: skip
        after = {side: tcp_counters(n) for side, n in (("client", client), ("server", srv))}
    try:
        end = json.loads(proc.stdout)["end"]
    except (ValueError, KeyError) as exc:
        raise BenchError(f"iperf3 ({setup.name}): {proc.stdout[-400:]} {proc.stderr}") from exc
    deltas = {
        f"{side}.{k}": after[side].get(k, 0) - before[side].get(k, 0)
        for side in ("client", "server")
        for k in TCP_COUNTERS
        if after[side].get(k, 0) - before[side].get(k, 0)
    }
    return {
        "iperf3": end["sum_received"]["bits_per_second"] / 1e6,
        "retransmits": end["sum_sent"].get("retransmits", 0),
        "counters": deltas,
    }


def drops(topo: Topology) -> int:
    total = 0
    for kd in topo.kernels.values():
        total += sum(v.packets for k, v in kd.dp.metrics.read().items() if k >= 130)
    return total


def forwarding(topo: Topology) -> dict[str, int]:
    out: dict[str, int] = {}
    for node, kd in topo.kernels.items():
        for k, v in kd.dp.metrics.read().items():
            if k in MetricsMap.FORWARDING:
                out[f"{node}.{MetricsMap.FORWARDING[k]}"] = v.packets
    return out


# ---- the run ----------------------------------------------------------------------


def run_bench(rounds: int = 3, seconds: int = 5, out: Path | None = DEFAULT_OUT) -> dict[str, Any]:
    """Measure every setup ``rounds`` times, interleaved; write JSON + Markdown to ``out``."""
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.time()
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problems = cleanup()
        if problems:
            raise BenchError(f"left from an earlier run: {problems}")
        try:
            topo = build()
            order = list(SETUPS)
            for r in range(rounds):
                for setup in order[r % len(order) :] + order[: r % len(order)]:
                    apply(setup, topo)
                    before_drops, before_fwd = drops(topo), forwarding(topo)
                    sample: dict[str, Any] = dict(qperf(setup, seconds))
                    sample.update(iperf(setup, seconds))
                    pinned = iperf(setup, seconds, pinned=True)
                    sample["iperf3_pinned"] = pinned["iperf3"]
                    sample["retransmits_pinned"] = pinned["retransmits"]
                    sample["counters_pinned"] = pinned["counters"]
                    fwd = forwarding(topo)
                    sample["forwarding"] = {
                        k: v - before_fwd.get(k, 0)
                        for k, v in fwd.items()
                        if v != before_fwd.get(k, 0)
                    }
                    sample["drops"] = drops(topo) - before_drops
                    if sample["drops"]:
                        raise BenchError(
                            f"{setup.name}: the datapath dropped {sample['drops']} packets"
                        )
                    samples.setdefault((setup.scenario, setup.name), []).append(sample)
                    print(f"round {r + 1} {setup.scenario} {setup.name}: "
                          + " ".join(f"{k}={sample[k]:.1f}" for k in (*QPERF_TESTS, "iperf3"))
                          + f" retrans={sample['retransmits']}", flush=True)  # fmt: skip
        finally:
            for kd in locals().get("topo", Topology({}, {}, {})).kernels.values():
                kd.close()
            left = cleanup()
            if left:
                raise BenchError(f"clean-up: {left}")
    report = summarize(samples, rounds, seconds, time.time() - started)
    if out is not None:
        write(out, report)
    return report


def _stat(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(
    samples: dict[tuple[str, str], list[dict[str, Any]]], rounds: int, seconds: int, wall: float
) -> dict[str, Any]:
    rows = []
    for (scenario, name), runs in samples.items():
        row: dict[str, Any] = {"scenario": scenario, "setup": name, "runs": len(runs)}
        for metric in (
            *QPERF_TESTS,
            "iperf3",
            "retransmits",
            "iperf3_pinned",
            "retransmits_pinned",
        ):
            row[metric] = _stat([float(s[metric]) for s in runs])
        counters: dict[str, list[int]] = {}
        for s in runs:
            for k, v in s["counters"].items():
                counters.setdefault(k, []).append(v)
        row["tcp_counters_median"] = {k: statistics.median(v + [0] * (len(runs) - len(v)))
                                      for k, v in sorted(counters.items())}  # fmt: skip
        pinned: dict[str, list[int]] = {}
        for s in runs:
            for k, v in s["counters_pinned"].items():
                pinned.setdefault(k, []).append(v)
        row["tcp_counters_pinned_median"] = {k: statistics.median(v + [0] * (len(runs) - len(v)))
                                             for k, v in sorted(pinned.items())}  # fmt: skip
        row["forwarding"] = runs[-1]["forwarding"]
        rows.append(row)
    limit = {r["scenario"]: r for r in rows if r["setup"] == "none"}
    for row in rows:
        base = limit.get(row["scenario"])
        if base:
            row["ratio_to_none"] = {
                m: round(row[m]["median"] / base[m]["median"], 3)
                for m in (*QPERF_TESTS, "iperf3", "iperf3_pinned")
            }
    return {
        "benchmark": "routing_datapath",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {"rounds": rounds, "seconds": seconds, "qperf": "-ub -oo msg_size:4K -vu"},
        "machine": {
            "kernel": os.uname().release,
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
        },
        "wall_seconds": round(wall, 1),
        "rows": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        "# Routing datapath: local delivery and cross-node pods",
        "",
        f"Run {report['date']} by `bench/routing_datapath.py`: {c['rounds']} round(s), setups "
        f"interleaved (rotated per round), qperf/iperf3 `-t {c['seconds']}`, kernel "
        f"{report['machine']['kernel']}, {report['machine']['cpus']} CPUs, load "
        f"{', '.join(f'{x:.2f}' for x in report['machine']['loadavg'])} at the end. "
        "Median [min-max] (ratio to `none` of the scenario). Every endpoint enforces "
        "policy in both directions except in `none` and `node-to-node`.",
    ]
    for scenario in ("same-node", "cross-node"):
        lines += ["", f"## {scenario}", "",
                  "| setup | tcp_lat us | udp_lat us | tcp_bw Mb/s | udp_bw Mb/s | iperf3 Mb/s | "
                  "iperf3 retrans | iperf3 -A 0,0 Mb/s | retrans -A 0,0 |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in (r for r in report["rows"] if r["scenario"] == scenario):
            cells = []
            for m in COLUMNS:
                s = row[m]
                ratio = row.get("ratio_to_none", {}).get(m)
                text = f"{s['median']:.1f} [{s['min']:.1f}-{s['max']:.1f}]"
                cells.append(
                    text + (f" ({ratio:.2f}x)" if ratio and row["setup"] != "none" else "")
                )
            lines.append(f"| {row['setup']} | " + " | ".join(cells) + " |")
        lines += ["", "TCP counters during iperf3 (median delta per run, non-zero only):", ""]
        for row in (r for r in report["rows"] if r["scenario"] == scenario):
            counters = ", ".join(f"{k} {v:g}" for k, v in row["tcp_counters_median"].items())
            pinned = ", ".join(f"{k} {v:g}" for k, v in row["tcp_counters_pinned_median"].items())
            lines.append(f"- {row['setup']}: {counters or '(none)'}; with -A 0,0: "
                         f"{pinned or '(none)'}; forwarding "
                         f"{row['forwarding'] or '(stack)'}")  # fmt: skip
    return "\n".join(lines) + "\n"


def write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "routing_datapath.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "routing_datapath.md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 round, 2 s per test")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--time", type=int, default=5, help="seconds per qperf test and iperf3 run")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("routing_datapath: needs root (netns, BPF)", file=sys.stderr)
        return 2
    rounds, seconds = (1, 2) if args.quick else (args.rounds, args.time)
    if rounds < 1 or seconds < 1:
        print("routing_datapath: --rounds and --time must be at least 1", file=sys.stderr)
        return 2
    try:
        report = run_bench(rounds, seconds, args.out)
    except BenchError as exc:
        print(f"routing_datapath: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        cleanup()
        return 130
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
