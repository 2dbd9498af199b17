"""Policy cost: Axoneme's eBPF datapath versus iptables, and the control plane behind it.

Part 1, the data path (as ``datapath-feasibility.md`` §4). A node netns
``axb-pnode`` and two pod netns ``axb-pa`` (client) and ``axb-pb`` (server),
each pod joined by a veth pair wired as the agent wires it
(``netdev.create_endpoint_link``: a /32 on the pod's ``eth0``, a default route via
169.254.1.1 with a permanent neighbour, /32 routes and permanent neighbours on the
node; forwarding on in the node netns only; no bridge). qperf runs from A to B:
``qperf -t N <ip> -ub -oo msg_size:4K -vu tcp_lat tcp_bw udp_lat udp_bw`` with a
fixed control and data port. Setups:

- ``none``: nothing attached (the limit).
- ``axoneme-bpf`` with R and 10 R rules: the agent's programs
  (``Datapath.open`` on ``/sys/fs/bpf/axb-policy/rN``, attached to both host
  veths), lxc entries enforcing both directions, an ipcache with the pods and one
  /32 per other identity, and a policy built by the real pipeline (``Policy``
  values -> ``resolve`` -> ``allow_from_host`` -> ``mapstate.build`` ->
  ``KernelDatapath.sync_policy``): R one-rule CNPs, each allowing a different
  identity and port (ingress and egress alternately), plus the two that allow
  the qperf flow (client egress, server ingress).
- ``iptables-nft`` / ``iptables-legacy`` with R and 10 R rules in the node
  netns's FORWARD chain (policy DROP): R non-matching ACCEPT rules, one per other
  identity and port, then the rules that accept the qperf flow and its replies,
  loaded with ``iptables-restore``. There is no conntrack rule in front, so every
  packet walks every rule (the reference's method). Non-first IP fragments (4K UDP
  messages are fragmented) are accepted at the end, as Axoneme's programs pass them.

The topology is rebuilt from scratch for every measurement. Each round runs every
setup once, in an order rotated from round to round; the value reported is the
median over the rounds. Before qperf, a connection to a port no rule allows must
time out (the filter is really there; ``none`` refuses it instead), and for
Axoneme no packet of the qperf run may be dropped.

Part 2, the control plane: (i) compute (``resolve`` for every endpoint,
``allow_from_host``, ``mapstate.build``) and program (``sync_policy`` into fresh
pinned maps) the policy of E endpoints under R rules; (ii) a new identity appears:
``SelectorCache.add_identity`` -> the policies whose selectables changed -> only
the endpoints they select are re-resolved -> ``mapstate.build`` -> ``sync_policy``
(+ the new pod's ipcache entry). A full regeneration afterwards must find nothing
to change, which checks the incremental path.

Run as root: ``.venv/bin/python bench/policy_datapath.py [--quick] [--out DIR]``.
Results go to ``DIR/policy_datapath.json`` and ``.md`` (default ``bench/results``).
Exit status: 0 success, 1 a measurement or check failed (or clean-up left
something), 2 usage or missing prerequisites, 130 interrupted. Clean-up (qperf
killed, every ``axb-*`` netns deleted, ``/sys/fs/bpf/axb-policy`` removed) runs on
every exit path, and a run first removes what a killed earlier run left behind.
Runs are serialised with the other benchmarks by ``flock`` on ``/run/axb-bench.lock``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import gc
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import exclusive_run, guarded_run, pids_marked

from axoneme.agent.enforcement import allow_from_host
from axoneme.datapath.linux import netdev
from axoneme.datapath.linux.loader import DEFAULT_OBJECT, Datapath
from axoneme.datapath.linux.maps import MetricsMap
from axoneme.datapath.linux.writer import KernelDatapath
from axoneme.datapath.types import IPCacheEntry, LxcEntry
from axoneme.identity.reserved import RESERVED, reserved_labels
from axoneme.kit.netns import entered, socket_in
from axoneme.labels.model import NAMESPACE_KEY, SOURCE_K8S, Label, LabelSet
from axoneme.policy import mapstate
from axoneme.policy.resolve import resolve
from axoneme.policy.selector import SelectorCache, matches, policy_selectables
from axoneme.policy.types import (
    EndpointPolicy,
    EndpointRef,
    Peers,
    Policy,
    PolicyContext,
    PortProtocol,
    Requirement,
    Rule,
    Selector,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"

PREFIX = "axb-"
NODE_NS, POD_A, POD_B = "axb-pnode", "axb-pa", "axb-pb"
PIN_ROOT = Path("/sys/fs/bpf/axb-policy")
LOCK_FILE = Path("/run/axb-bench.lock")
# Set in qperf's environment: how a later run finds a server a killed run left.
PROC_MARK = b"AXB_BENCH=policy_datapath"

A_IP, B_IP, ROUTER = "10.79.0.10", "10.79.0.20", "169.254.1.1"
A_EP, B_EP = 1, 2
A_ID, B_ID = 1001, 1002
OTHER_ID_BASE = 10_000  # identity of other rule k: OTHER_ID_BASE + k
QPERF_LISTEN, QPERF_DATA = 19765, 19766
CLOSED_PORT = 19999  # no rule allows it
QPERF_TESTS = ("tcp_lat", "tcp_bw", "udp_lat", "udp_bw")  # the reference's order
NS = "bench"

# metric -> unit; udp_bw is what the receiver got (the reference's column), and the
# sender's rate is kept beside it.
METRICS = {
    "tcp_lat": "us",
    "udp_lat": "us",
    "tcp_bw": "Mb/s",
    "udp_bw": "Mb/s",
    "udp_send_bw": "Mb/s",
}
LOWER_IS_BETTER = {"tcp_lat", "udp_lat"}
SCENARIO = "pod-to-pod, one node"


class BenchError(Exception):
    """A measurement or a check failed: the run is invalid."""


# --- small helpers ----------------------------------------------------------------------


def run(
    cmd: Sequence[str], *, stdin: str | None = None, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd), input=stdin, capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)[:200]}: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc


def ns_path(name: str) -> str:
    return f"/run/netns/{name}"


def our_netns() -> list[str]:
    run_dir = Path("/run/netns")
    names = os.listdir(run_dir) if run_dir.is_dir() else []
    # Only this benchmark's: other benchmarks use other axb- names at the same time.
    return sorted(n for n in names if n in (NODE_NS, POD_A, POD_B))


def delete_netns(names: Sequence[str]) -> None:
    if names:
        subprocess.run(
            ["ip", "-force", "-batch", "-"],
            input="".join(f"netns del {n}\n" for n in names),
            capture_output=True,
            text=True,
            check=False,
        )


def marked_pids() -> list[int]:
    return pids_marked(PROC_MARK)


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


def k8s(key: str, value: str) -> Label:
    return Label(SOURCE_K8S, key, value)


def selector(**labels: str) -> Selector:
    """matchLabels over k8s labels; ``ns`` is the namespace label."""
    reqs = []
    for key, value in sorted(labels.items()):
        name = NAMESPACE_KEY if key == "ns" else key
        reqs.append(Requirement(f"k8s:{name}", "In", frozenset({value})))
    return Selector(tuple(reqs))


def pod_labels(ns: str, app: str, **extra: str) -> LabelSet:
    return frozenset(
        {k8s(NAMESPACE_KEY, ns), k8s("app", app)} | {k8s(k, v) for k, v in extra.items()}
    )


def one_rule_policy(
    name: str,
    ns: str,
    subject: Selector,
    direction: str,
    peer: Selector,
    ports: tuple[PortProtocol, ...],
    *,
    deny_both: bool = False,
) -> Policy:
    rule = Rule(direction, "allow", Peers(selectors=(peer,)), ports)  # type: ignore[arg-type]
    return Policy(
        kind="CiliumNetworkPolicy",
        namespace=ns,
        name=name,
        subject=subject,
        rules=(rule,),
        default_deny_ingress=deny_both or direction == "ingress",
        default_deny_egress=deny_both or direction == "egress",
    )


def reserved_universe() -> dict[int, LabelSet]:
    return {int(num): reserved_labels(name) for name, num in RESERVED.items()}


def resolve_all(
    endpoints: Sequence[EndpointRef],
    policies: Sequence[Policy],
    ctx: PolicyContext,
    cache: SelectorCache,
) -> dict[int, EndpointPolicy]:
    """What ``Enforcement.regenerate`` computes per endpoint (allow-localhost on)."""
    return {ep.id: allow_from_host(resolve(ep, policies, ctx, cache)) for ep in endpoints}


def warm_selector_cache(
    identities: dict[int, LabelSet], policies: Sequence[Policy]
) -> SelectorCache:
    """A SelectorCache with every selectable of the policies registered: the part of
    ``resolve`` that is O(selectors x identities), timed on its own."""
    cache = SelectorCache(identities)
    for policy in policies:
        for selectable in policy_selectables(policy):
            cache.register(selectable)
    return cache


def other_ip(k: int) -> str:
    """A /32 for other identity k, outside the pods' 10.79.0.0/24."""
    return f"10.{80 + (k >> 16)}.{(k >> 8) & 0xFF}.{k & 0xFF}"


# --- data path: the policy each setup enforces ------------------------------------------

BENCH_PORTS = (
    PortProtocol(QPERF_LISTEN, protocol="TCP"),
    PortProtocol(QPERF_DATA, protocol="TCP"),
    PortProtocol(QPERF_DATA, protocol="UDP"),
)


# Other identities in the data-path setups: rule k allows identity k % OTHER_IDS. With
# 10,000 rules, each identity is allowed on 10 ports: the selector cache is
# O(selectors x identities), so 10,000 x 10,000 distinct ones would take minutes.
OTHER_IDS = 1000


def other_ids(rules: int) -> int:
    return min(rules, OTHER_IDS)


def other_port(k: int) -> int:
    return 20_000 + k % 40_000  # never a qperf port


def datapath_policies(rules: int) -> list[Policy]:
    """``rules`` one-rule CNPs selecting both pods (rule k allows other identity
    k % 1000 on its own port, ingress and egress alternately) plus the two allowing
    the qperf flow."""
    both = selector(ns=NS, role="qperf")
    n_ids = other_ids(rules)
    policies = [
        one_rule_policy(
            f"other-{k}",
            NS,
            both,
            "ingress" if k % 2 == 0 else "egress",
            selector(ns=NS, app=f"other-{k % n_ids}"),
            (PortProtocol(other_port(k), protocol="TCP"),),
        )
        for k in range(rules)
    ]
    policies.append(
        one_rule_policy(
            "qperf-server",
            NS,
            selector(ns=NS, app="qperf-server"),
            "ingress",
            selector(ns=NS, app="qperf-client"),
            BENCH_PORTS,
            deny_both=True,
        )
    )
    policies.append(
        one_rule_policy(
            "qperf-client",
            NS,
            selector(ns=NS, app="qperf-client"),
            "egress",
            selector(ns=NS, app="qperf-server"),
            BENCH_PORTS,
            deny_both=True,
        )
    )
    return policies


IPT_TAIL = 7  # rules after the non-matching ones: the qperf flow both ways + fragments


def iptables_rules(rules: int) -> str:
    """The same filtering in FORWARD: ``rules`` non-matching ACCEPTs, then the flow."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    n_ids = other_ids(rules)
    for k in range(rules):
        if k % 2 == 0:  # ingress of the pods: other -> pod
            match = f"-s {other_ip(k % n_ids)}/32 -d {B_IP}/32"
        else:  # egress of the pods: pod -> other
            match = f"-s {A_IP}/32 -d {other_ip(k % n_ids)}/32"
        lines.append(f"-A FORWARD {match} -p tcp -m tcp --dport {other_port(k)} -j ACCEPT")
    for proto, port in (("tcp", QPERF_LISTEN), ("tcp", QPERF_DATA), ("udp", QPERF_DATA)):
        lines.append(
            f"-A FORWARD -s {A_IP}/32 -d {B_IP}/32 -p {proto} -m {proto} --dport {port} -j ACCEPT"
        )
        lines.append(
            f"-A FORWARD -s {B_IP}/32 -d {A_IP}/32 -p {proto} -m {proto} --sport {port} -j ACCEPT"
        )
    # 4K UDP datagrams are fragmented; later fragments carry no ports. Axoneme's
    # programs pass them (a documented gap), so the iptables setups do the same.
    lines.append("-A FORWARD -f -j ACCEPT")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@dataclass
class Setup:
    key: str
    datapath: str  # none | axoneme-bpf | iptables-nft | iptables-legacy
    rules: int
    kd: KernelDatapath | None = None  # axoneme: its own pin dir and maps
    ipt_rules: str = ""
    program_ms: list[float] = field(default_factory=list)  # to program the rules
    program_detail: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    drops: list[int] = field(default_factory=list)
    loadavg: list[float] = field(default_factory=list)  # 1-min load before each qperf
    failures: list[str] = field(default_factory=list)  # qperf runs retried
    flags: dict[int, int] = field(default_factory=dict)  # axoneme: endpoint -> lxc flags


def program_axoneme(setup: Setup) -> None:
    """Load the programs into their own pin dir and program the rules (once)."""
    pin = PIN_ROOT / f"r{setup.rules}"
    start = time.perf_counter()
    dp = Datapath.open(pin)
    load_ms = ms_since(start)
    setup.kd = kd = KernelDatapath(dp)
    a_labels = pod_labels(NS, "qperf-client", role="qperf")
    b_labels = pod_labels(NS, "qperf-server", role="qperf")
    identities = reserved_universe() | {A_ID: a_labels, B_ID: b_labels}
    n_ids = other_ids(setup.rules)
    identities |= {OTHER_ID_BASE + k: pod_labels(NS, f"other-{k}") for k in range(n_ids)}
    policies = datapath_policies(setup.rules)
    endpoints = [EndpointRef(A_EP, A_ID, a_labels), EndpointRef(B_EP, B_ID, b_labels)]
    start = time.perf_counter()
    cache = warm_selector_cache(identities, policies)
    selector_ms = ms_since(start)
    ctx = PolicyContext(identities=identities, named_ports={})
    results = resolve_all(endpoints, policies, ctx, cache)
    state = mapstate.build(results.values())
    compute_ms = ms_since(start)
    start = time.perf_counter()
    changes = kd.sync_policy(state)
    sync_ms = ms_since(start)
    ipcache = {f"{A_IP}/32": IPCacheEntry(A_ID), f"{B_IP}/32": IPCacheEntry(B_ID)}
    ipcache |= {f"{other_ip(k)}/32": IPCacheEntry(OTHER_ID_BASE + k) for k in range(n_ids)}
    start = time.perf_counter()
    kd.sync_ipcache(ipcache)
    ipcache_ms = ms_since(start)
    for ep in (A_EP, B_EP):
        if state.flags.get(ep) != mapstate.FLAG_INGRESS_ENFORCED | mapstate.FLAG_EGRESS_ENFORCED:
            raise BenchError(f"endpoint {ep} is not enforced both ways: {state.flags.get(ep)}")
    setup.program_ms.append(compute_ms + sync_ms)
    setup.program_detail = {
        "load_ms": round(load_ms, 2),
        "compute_ms": round(compute_ms, 2),
        "selector_cache_ms": round(selector_ms, 2),
        "sync_policy_ms": round(sync_ms, 2),
        "sync_ipcache_ms": round(ipcache_ms, 2),
        "policy_entries": len(state.by_identity),
        "port_sets": len(state.port_sets),
        "map_writes": changes,
        "ipcache_entries": len(ipcache),
    }
    setup.flags = dict(state.flags)


# --- data path: topology and qperf ------------------------------------------------------


@dataclass
class Topology:
    lxc_a: int
    lxc_b: int
    mac_a: str  # the host-side MACs
    mac_b: str


def build_topology() -> Topology:
    for name in (NODE_NS, POD_A, POD_B):
        run(["ip", "netns", "add", name])
    with entered(ns_path(NODE_NS)):
        for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
            netdev.write_sysctl(key, "0")
        netdev.write_sysctl("net.ipv4.ip_forward", "1")
        links = [
            netdev.create_endpoint_link(
                netns=ns_path(pod), ifname="eth0", host_ifname=host, address=ip, router_ip=ROUTER
            )
            for pod, host, ip in ((POD_A, "lxcaxba", A_IP), (POD_B, "lxcaxbb", B_IP))
        ]
    run(["ip", "-n", NODE_NS, "link", "set", "lo", "up"])
    return Topology(
        links[0].host_ifindex, links[1].host_ifindex, links[0].host_mac, links[1].host_mac
    )


def teardown_topology() -> None:
    kill_pids(marked_pids())
    delete_netns([n for n in our_netns() if n in (NODE_NS, POD_A, POD_B)])


def apply_setup(setup: Setup, topo: Topology) -> None:
    if setup.datapath == "axoneme-bpf":
        kd = setup.kd
        assert kd is not None
        kd.dp.lxc.clear()
        kd.dp.ct.flush()
        flags = setup.flags
        for ifindex, ep, ident, ip, mac in (
            (topo.lxc_a, A_EP, A_ID, A_IP, topo.mac_a),
            (topo.lxc_b, B_EP, B_ID, B_IP, topo.mac_b),
        ):
            kd.set_endpoint(ifindex, LxcEntry(ep, ident, ip, flags[ep], mac))
        with entered(ns_path(NODE_NS)):
            kd.attach(topo.lxc_a)
            kd.attach(topo.lxc_b)
            for ifindex in (topo.lxc_a, topo.lxc_b):
                if None in kd.dp.attached(ifindex).values():
                    raise BenchError(f"programs not attached to ifindex {ifindex}")
    elif setup.datapath.startswith("iptables-"):
        restore = f"{setup.datapath}-restore"
        start = time.perf_counter()
        run(["ip", "netns", "exec", NODE_NS, restore], stdin=setup.ipt_rules)
        setup.program_ms.append(ms_since(start))
        listed = run(["ip", "netns", "exec", NODE_NS, setup.datapath, "-S", "FORWARD"]).stdout
        count = sum(1 for line in listed.splitlines() if line.startswith("-A FORWARD"))
        if count != setup.rules + IPT_TAIL:
            raise BenchError(
                f"{setup.key}: FORWARD has {count} rules, want {setup.rules + IPT_TAIL}"
            )


def closed_port_answer() -> str:
    """Connect from A to B on a port no rule allows: refused, timeout or connected."""
    sock = socket_in(ns_path(POD_A), socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(True)
        sock.settimeout(0.4)
        sock.connect((B_IP, CLOSED_PORT))
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    finally:
        sock.close()


def listening(pid: int, port: int) -> bool:
    """Whether the process's netns has a TCP (v4 or v6) socket listening on port."""
    want = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        if any(p[1].endswith(want) and p[3] == "0A" for p in (line.split() for line in lines)):
            return True
    return False


def start_qperf_server() -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    key, _, value = PROC_MARK.decode().partition("=")
    env[key] = value
    # `ip netns exec` execs qperf: the PID we hold is the server's.
    server = subprocess.Popen(
        ["ip", "netns", "exec", POD_B, "qperf", "--listen_port", str(QPERF_LISTEN)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 5
    while not listening(server.pid, QPERF_LISTEN):
        if server.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"qperf server did not start (exit {server.poll()})")
        time.sleep(0.02)
    return server


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its forks
    proc.wait(timeout=10)


_UNITS = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "sec": 1e6, "s": 1e6}
_BW_UNITS = {"b/sec": 1e-6, "Kb/sec": 1e-3, "Mb/sec": 1.0, "Gb/sec": 1e3, "Tb/sec": 1e6}


def parse_qperf(text: str) -> dict[str, float]:
    """qperf -vu output -> {metric: value in METRICS units}."""
    out: dict[str, float] = {}
    test = ""
    for line in text.splitlines():
        if re.fullmatch(r"\w+:", line.strip()):
            test = line.strip()[:-1]
            continue
        m = re.match(r"\s*(\w+)\s*=\s*([\d.,]+)\s*(\S+)", line)
        if not m or not test:
            continue
        name, value, unit = m.group(1), float(m.group(2).replace(",", "")), m.group(3)
        if name == "latency" and unit in _UNITS:
            out[test] = value * _UNITS[unit]
        elif unit in _BW_UNITS:
            scaled = value * _BW_UNITS[unit]
            if test == "tcp_bw" and name == "bw":
                out["tcp_bw"] = scaled
            elif test == "udp_bw" and name == "recv_bw":
                out["udp_bw"] = scaled
            elif test == "udp_bw" and name == "send_bw":
                out["udp_send_bw"] = scaled
    return out


def run_qperf(seconds: int) -> tuple[dict[str, float], str]:
    server = start_qperf_server()
    try:
        cmd = [
            "ip",
            "netns",
            "exec",
            POD_A,
            "qperf",
            "--listen_port",
            str(QPERF_LISTEN),
            "--ip_port",
            str(QPERF_DATA),
            "-t",
            str(seconds),
            B_IP,
            "-ub",
            "-oo",
            "msg_size:4K",
            "-vu",
            *QPERF_TESTS,
        ]
        proc = run(cmd, check=False, timeout=seconds * len(QPERF_TESTS) + 60)
    finally:
        stop_process(server)
    values = parse_qperf(proc.stdout)
    missing = [m for m in METRICS if m not in values]
    if proc.returncode != 0 or missing:
        raise BenchError(
            f"qperf exited {proc.returncode}, missing {missing}: "
            f"{(proc.stdout + proc.stderr).strip()[-800:]}"
        )
    return values, proc.stdout


class QperfFailed(BenchError):
    """qperf gave no result, and the datapath under test dropped nothing: retryable."""


def measure(setup: Setup, seconds: int) -> dict[str, float]:
    """One measurement on a fresh topology."""
    teardown_topology()
    topo = build_topology()
    try:
        apply_setup(setup, topo)
        answer = closed_port_answer()
        want = "refused" if setup.datapath == "none" else "timeout"
        if answer != want:
            raise BenchError(f"{setup.key}: port {CLOSED_PORT} answered {answer!r}, want {want!r}")
        metrics: MetricsMap | None = setup.kd.dp.metrics if setup.kd else None
        if metrics is not None:
            metrics.reset()  # the closed-port probe's drops
        load = loadavg_1m()
        try:
            values, _ = run_qperf(seconds)
            failure = None
        except BenchError as exc:
            values, failure = {}, exc
        if metrics is not None:
            drops = {r: m.packets for r, m in metrics.read().items() if r != 0 and m.packets}
            if drops:  # never retried: that would hide a datapath bug
                raise BenchError(
                    f"{setup.key}: the datapath dropped qperf packets (reason: count) {drops}"
                    + (f"; {failure}" if failure else "")
                )
            setup.drops.append(0)
        if failure is not None:
            raise QperfFailed(str(failure))
        for metric, value in values.items():
            setup.samples.setdefault(metric, []).append(value)
        setup.loadavg.append(load)
        return values
    finally:
        teardown_topology()


# --- control plane ----------------------------------------------------------------------


@dataclass
class Cluster:
    """E local endpoints under R rules (see ``make_cluster``)."""

    endpoints: list[EndpointRef]
    policies: list[Policy]
    identities: dict[int, LabelSet]
    ipcache: dict[str, IPCacheEntry]
    shape: dict[str, Any]


def make_cluster(n_endpoints: int, n_rules: int) -> Cluster:
    """10 namespaces x 10 local apps (E/100 replicas each, one identity per app), and
    190 remote apps per namespace: 2,000 app identities. Policy k lives in namespace
    k%10 and selects local app (k//10)%10 there; its one rule is ingress or egress
    (alternating per block of 100 policies) on TCP port 1000+k from/to one app
    identity, except the first 100 policies, which allow a whole peer namespace
    (200 identities). Each local app is selected by R/100 policies."""
    namespaces, local_apps, apps_per_ns = 10, 10, 200
    replicas = max(1, n_endpoints // (namespaces * local_apps))
    identities = reserved_universe()
    ident_of: dict[tuple[int, int], int] = {}
    ipcache: dict[str, IPCacheEntry] = {}
    for n in range(namespaces):
        for a in range(apps_per_ns):
            ident = 256 + n * apps_per_ns + a
            ident_of[(n, a)] = ident
            identities[ident] = pod_labels(f"ns-{n}", f"app-{a}")
            if a >= local_apps:  # one remote pod per remote app
                ipcache[f"10.90.{n}.{a}/32"] = IPCacheEntry(ident, "192.168.0.2")
    endpoints = []
    for i in range(n_endpoints):
        n, a = (i // replicas // local_apps) % namespaces, (i // replicas) % local_apps
        ident = ident_of[(n, a)]
        endpoints.append(EndpointRef(i + 1, ident, identities[ident]))
        ipcache[f"10.91.{i >> 8}.{i & 0xFF}/32"] = IPCacheEntry(ident)
    policies = []
    for k in range(n_rules):
        n, a = k % namespaces, (k // namespaces) % local_apps
        direction = "ingress" if (k // 100) % 2 == 0 else "egress"
        peer_ns = (k * 7 + 3) % namespaces
        if k < 100:
            peer = selector(ns=f"ns-{peer_ns}")
        else:
            peer = selector(ns=f"ns-{peer_ns}", app=f"app-{(k * 37) % apps_per_ns}")
        policies.append(
            one_rule_policy(
                f"p{k}",
                f"ns-{n}",
                selector(ns=f"ns-{n}", app=f"app-{a}"),
                direction,
                peer,
                (PortProtocol(1000 + k, protocol="TCP"),),
            )
        )
    shape = {
        "endpoints": n_endpoints,
        "rules": n_rules,
        "namespaces": namespaces,
        "local_apps": namespaces * local_apps,
        "replicas_per_app": replicas,
        "identities": len(identities),
        "namespace_wide_rules": min(100, n_rules),
        "ipcache_entries": len(ipcache),
    }
    return Cluster(endpoints, policies, identities, ipcache, shape)


def fresh_kernel_datapath(name: str) -> KernelDatapath:
    pin = PIN_ROOT / name
    if pin.exists():
        Datapath.remove(pin)
    return KernelDatapath(Datapath.open(pin))


def policy_map_counts(kd: KernelDatapath) -> dict[str, int]:
    return {
        "axo_policy": len(kd._policy),
        "axo_policy_cidr": len(kd._cidr),
        "axo_policy_ports": len(kd._ports),
        "axo_ipcache": len(kd._ipcache),
    }


def control_plane_program(
    cluster: Cluster, rounds: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """(i) compute and program every endpoint's policy into fresh maps."""
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "selector_cache_ms",
            "resolve_ms",
            "build_ms",
            "compute_ms",
            "sync_policy_ms",
            "lxc_ms",
            "program_ms",
            "resync_unchanged_ms",
        )
    }
    counts: dict[str, int] = {}
    for rnd in range(rounds):
        kd = fresh_kernel_datapath("cp")
        try:
            kd.sync_ipcache(cluster.ipcache)  # not timed: the cluster exists already
            gc.collect()
            start = time.perf_counter()
            cache = warm_selector_cache(cluster.identities, cluster.policies)
            selector_ms = ms_since(start)
            start = time.perf_counter()
            ctx = PolicyContext(identities=cluster.identities, named_ports={})
            results = resolve_all(cluster.endpoints, cluster.policies, ctx, cache)
            resolve_ms = ms_since(start)
            start = time.perf_counter()
            state = mapstate.build(results.values())
            build_ms = ms_since(start)
            start = time.perf_counter()
            writes = kd.sync_policy(state)
            sync_ms = ms_since(start)
            start = time.perf_counter()
            for ep in cluster.endpoints:
                kd.set_endpoint(
                    100_000 + ep.id,
                    LxcEntry(
                        ep.id,
                        ep.identity,
                        "10.91.0.1",
                        state.flags.get(ep.id, 0),
                        "02:00:00:00:00:01",
                    ),
                )
            lxc_ms = ms_since(start)
            same = mapstate.build(results.values())
            start = time.perf_counter()
            again = kd.sync_policy(same)  # the diff alone, nothing to write
            resync_ms = ms_since(start)
            if again != 0:
                raise BenchError(f"re-sync of an unchanged state wrote {again} entries")
            compute_ms = selector_ms + resolve_ms + build_ms
            out["selector_cache_ms"].append(selector_ms)
            out["resolve_ms"].append(resolve_ms)
            out["build_ms"].append(build_ms)
            out["compute_ms"].append(compute_ms)
            out["sync_policy_ms"].append(sync_ms)
            out["lxc_ms"].append(lxc_ms)
            out["program_ms"].append(sync_ms + lxc_ms)
            out["resync_unchanged_ms"].append(resync_ms)
            counts = {
                "map_writes": writes,
                "policy_entries": len(state.by_identity),
                "cidr_entries": len(state.by_prefix),
                "port_sets": len(state.port_sets),
                "ingress_enforced_endpoints": sum(
                    1 for f in state.flags.values() if f & mapstate.FLAG_INGRESS_ENFORCED
                ),
                "egress_enforced_endpoints": sum(
                    1 for f in state.flags.values() if f & mapstate.FLAG_EGRESS_ENFORCED
                ),
                **policy_map_counts(kd),
            }
            say(
                f"  control plane (i) round {rnd + 1}/{rounds}: compute {compute_ms:.0f} ms "
                f"(selector cache {selector_ms:.0f}, resolve {resolve_ms:.0f}, build "
                f"{build_ms:.0f}), program {sync_ms + lxc_ms:.0f} ms ({writes} map writes)"
            )
        finally:
            kd.close()
            Datapath.remove(PIN_ROOT / "cp")
    return {"samples": out, "counts": counts}


def control_plane_identity(
    cluster: Cluster, arrivals: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """(ii) new identities appear one by one; only affected endpoints are re-resolved."""
    kd = fresh_kernel_datapath("cp")
    try:
        identities = dict(cluster.identities)
        cache = SelectorCache(identities)
        ctx = PolicyContext(identities=identities, named_ports={})
        results = resolve_all(cluster.endpoints, cluster.policies, ctx, cache)
        kd.sync_policy(mapstate.build(results.values()))
        ipcache = dict(cluster.ipcache)
        kd.sync_ipcache(ipcache)
        # What an agent keeps between events (not timed): each policy's selectables,
        # and which endpoints each policy selects.
        by_policy = [(p, policy_selectables(p)) for p in cluster.policies]
        selects_ep = {
            id(p): [ep for ep in cluster.endpoints if matches(p.subject, ep.labels)]
            for p in cluster.policies
        }
        samples: dict[str, list[float]] = {
            k: []
            for k in (
                "total_ms",
                "selector_cache_ms",
                "affected_ms",
                "resolve_ms",
                "build_ms",
                "sync_policy_ms",
                "sync_ipcache_ms",
            )
        }
        detail = []
        for i in range(arrivals):
            n, a = (3 + i * 3) % 10, (5 + i * 7) % 200
            new_id = 60_000 + i
            labels = pod_labels(f"ns-{n}", f"app-{a}", **{"pod-template-hash": f"v{i + 2}"})
            new_ip = f"10.92.0.{i + 1}/32"
            gc.collect()
            t0 = time.perf_counter()
            changed = cache.add_identity(new_id, labels)
            t1 = time.perf_counter()
            affected: dict[int, EndpointRef] = {}
            for policy, selectables in by_policy:
                if selectables & changed:
                    for ep in selects_ep[id(policy)]:
                        affected[ep.id] = ep
            t2 = time.perf_counter()
            ctx = PolicyContext(identities=identities | {new_id: labels}, named_ports={})
            for ep in affected.values():
                results[ep.id] = allow_from_host(resolve(ep, cluster.policies, ctx, cache))
            t3 = time.perf_counter()
            state = mapstate.build(results.values())
            t4 = time.perf_counter()
            writes = kd.sync_policy(state)
            t5 = time.perf_counter()
            ipcache[new_ip] = IPCacheEntry(new_id, "192.168.0.3")
            kd.sync_ipcache(ipcache)
            t6 = time.perf_counter()
            identities[new_id] = labels
            for key, (x, y) in (
                ("selector_cache_ms", (t0, t1)),
                ("affected_ms", (t1, t2)),
                ("resolve_ms", (t2, t3)),
                ("build_ms", (t3, t4)),
                ("sync_policy_ms", (t4, t5)),
                ("sync_ipcache_ms", (t5, t6)),
                ("total_ms", (t0, t6)),
            ):
                samples[key].append((y - x) * 1e3)
            detail.append(
                {
                    "identity": new_id,
                    "labels": sorted(str(lb) for lb in labels),
                    "changed_selectables": len(changed),
                    "affected_endpoints": len(affected),
                    "map_writes": writes,
                }
            )
            say(
                f"  control plane (ii) identity {i + 1}/{arrivals}: {len(affected)} endpoints "
                f"re-resolved, {writes} map writes, {(t6 - t0) * 1e3:.0f} ms"
            )
        # Check: everything recomputed from scratch (a fresh selector cache too) must
        # find nothing to change. Then time what the agent does today on an identity
        # event: every endpoint re-resolved (its selector cache is warm) + build + sync.
        ctx = PolicyContext(identities=identities, named_ports={})
        fresh = warm_selector_cache(identities, cluster.policies)
        everything = resolve_all(cluster.endpoints, cluster.policies, ctx, fresh)
        leftover = kd.sync_policy(mapstate.build(everything.values()))
        full: list[float] = []
        for _ in range(2):
            if leftover:
                break
            gc.collect()
            start = time.perf_counter()
            everything = resolve_all(cluster.endpoints, cluster.policies, ctx, cache)
            leftover = kd.sync_policy(mapstate.build(everything.values()))
            full.append(ms_since(start))
        if leftover:
            raise BenchError(
                f"incremental updates missed {leftover} map entries "
                "(a full regeneration changed them)"
            )
        return {
            "samples": samples,
            "detail": detail,
            "full_regeneration_ms": full,
            "full_regeneration_changes": leftover,
        }
    finally:
        kd.close()
        Datapath.remove(PIN_ROOT / "cp")


# --- the benchmark ----------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.setups: list[Setup] = []
        self.control: dict[str, Any] = {}
        self.identity: dict[str, Any] = {}
        self.cluster_shape: dict[str, Any] = {}

    def sweep_stale(self) -> list[str]:
        """Remove what a killed earlier run left (we hold the lock: nothing here is live)."""
        done = []
        stale_pids = marked_pids()
        kill_pids(stale_pids)
        done += [f"killed stale qperf {pid}" for pid in stale_pids]
        stale = our_netns()
        delete_netns(stale)
        if stale:
            done.append(f"deleted {len(stale)} stale netns: {' '.join(stale[:4])}")
        if PIN_ROOT.exists():
            Datapath.remove(PIN_ROOT)
            done.append(f"removed stale pins {PIN_ROOT}")
        return done

    def make_setups(self) -> None:
        r = self.args.rules
        self.setups = [Setup("none", "none", 0)]
        self.setups += [Setup(f"axoneme-bpf/{n}", "axoneme-bpf", n) for n in (r, 10 * r)]
        for tool in ("iptables-nft", "iptables-legacy"):
            if shutil.which(f"{tool}-restore") is None:
                continue
            for n in (r, 10 * r):
                self.setups.append(Setup(f"{tool}/{n}", tool, n, ipt_rules=iptables_rules(n)))

    def run_datapath(self, say: Callable[[str], None]) -> None:
        for setup in self.setups:
            if setup.datapath == "axoneme-bpf":
                program_axoneme(setup)
                d = setup.program_detail
                say(
                    f"  {setup.key}: loaded in {d['load_ms']:.0f} ms; compute "
                    f"{d['compute_ms']:.0f} ms + sync_policy {d['sync_policy_ms']:.0f} ms, "
                    f"{d['policy_entries']} policy entries, {d['ipcache_entries']} ipcache"
                )
        n = len(self.setups)
        for rnd in range(self.args.rounds):
            shift = rnd % n
            order = self.setups[shift:] + self.setups[:shift]
            for setup in order:
                try:
                    v = measure(setup, self.args.time)
                except QperfFailed as exc:
                    # The machine is shared: qperf's 5 s message timeout can expire under
                    # load. Retried once on a fresh topology, and reported.
                    setup.failures.append(f"round {rnd + 1}: {str(exc)[:300]}")
                    say(
                        f"  round {rnd + 1}/{self.args.rounds} {setup.key}: qperf failed "
                        f"({str(exc)[:80]!r}), retrying once"
                    )
                    v = measure(setup, self.args.time)
                say(
                    f"  round {rnd + 1}/{self.args.rounds} {setup.key:24} tcp_lat "
                    f"{v['tcp_lat']:7.1f} us  udp_lat {v['udp_lat']:7.1f} us  tcp_bw "
                    f"{v['tcp_bw']:7.0f}  udp_bw {v['udp_bw']:7.0f} Mb/s"
                )

    def run_control_plane(self, say: Callable[[str], None]) -> None:
        cluster = make_cluster(self.args.cp_endpoints, self.args.cp_rules)
        self.cluster_shape = cluster.shape
        self.control = control_plane_program(cluster, self.args.cp_rounds, say)
        self.identity = control_plane_identity(cluster, self.args.arrivals, say)

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for setup in self.setups:
            if setup.kd is not None:
                try:
                    setup.kd.close()
                except OSError as exc:
                    problems.append(f"closing {setup.key}: {exc}")
                setup.kd = None
        pids = marked_pids()
        kill_pids(pids)
        problems += [f"qperf process {pid} had to be killed" for pid in pids]
        delete_netns(our_netns())
        try:
            Datapath.remove(PIN_ROOT)
        except OSError as exc:
            problems.append(f"removing {PIN_ROOT}: {exc}")
        time.sleep(0.05)
        if our_netns():
            problems.append(f"netns left: {our_netns()}")
        if marked_pids():
            problems.append(f"processes left: {marked_pids()}")
        if PIN_ROOT.exists():
            problems.append(f"pin dir left: {PIN_ROOT}")
        return problems


# --- results ----------------------------------------------------------------------------


def _stat(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "samples": [round(v, 3) for v in values],
    }


def _round(x: float) -> float:
    return round(x, 3) if abs(x) < 100 else round(x, 1)


def summarize(bench: Bench) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    limit = next((s for s in bench.setups if s.datapath == "none"), None)
    for setup in bench.setups if limit is not None else []:
        for metric, unit in METRICS.items():
            st = _stat(setup.samples[metric])
            base = statistics.median(limit.samples[metric])
            rows.append(
                {
                    "scenario": SCENARIO,
                    "setup": setup.key,
                    "datapath": setup.datapath,
                    "rules": setup.rules,
                    "metric": metric,
                    "median": _round(st["median"]),
                    "unit": unit,
                    "runs": st["runs"],
                    "min": _round(st["min"]),
                    "max": _round(st["max"]),
                    "samples": st["samples"],
                    "ratio_to_limit": round(st["median"] / base, 3) if base else None,
                    "loadavg_1m": setup.loadavg,
                    "retried": setup.failures,
                }
            )
    for setup in bench.setups:
        if setup.datapath == "none":
            continue
        st = _stat(setup.program_ms)
        rows.append(
            {
                "scenario": "program the pod-to-pod rules",
                "setup": setup.key,
                "datapath": setup.datapath,
                "rules": setup.rules,
                "metric": "program_ms",
                "median": _round(st["median"]),
                "unit": "ms",
                "runs": st["runs"],
                "min": _round(st["min"]),
                "max": _round(st["max"]),
                "samples": st["samples"],
                "ratio_to_limit": None,
                **({"detail": setup.program_detail} if setup.program_detail else {}),
            }
        )
    if bench.control:
        shape = bench.cluster_shape
        scen = f"program policy: {shape['endpoints']} endpoints x {shape['rules']} rules"
        for metric, values in bench.control["samples"].items():
            st = _stat(values)
            rows.append(
                {
                    "scenario": scen,
                    "setup": "axoneme",
                    "datapath": "axoneme-bpf",
                    "rules": shape["rules"],
                    "metric": metric,
                    "median": _round(st["median"]),
                    "unit": "ms",
                    "runs": st["runs"],
                    "min": _round(st["min"]),
                    "max": _round(st["max"]),
                    "samples": st["samples"],
                    "ratio_to_limit": None,
                }
            )
        for metric, value in bench.control["counts"].items():
            unit = "endpoints" if metric.endswith("_endpoints") else "entries"
            rows.append(
                {
                    "scenario": scen,
                    "setup": "axoneme",
                    "datapath": "axoneme-bpf",
                    "rules": shape["rules"],
                    "metric": metric,
                    "median": value,
                    "unit": unit,
                    "runs": 1,
                    "ratio_to_limit": None,
                }
            )
    if bench.identity:
        shape = bench.cluster_shape
        scen = f"new identity: {shape['endpoints']} endpoints x {shape['rules']} rules"
        samples = dict(bench.identity["samples"])
        samples["full_regeneration_ms"] = bench.identity["full_regeneration_ms"]
        for metric, values in samples.items():
            st = _stat(values)
            rows.append(
                {
                    "scenario": scen,
                    "setup": "axoneme",
                    "datapath": "axoneme-bpf",
                    "rules": shape["rules"],
                    "metric": metric,
                    "median": _round(st["median"]),
                    "unit": "ms",
                    "runs": st["runs"],
                    "min": _round(st["min"]),
                    "max": _round(st["max"]),
                    "samples": st["samples"],
                    "ratio_to_limit": None,
                }
            )
        for metric in ("affected_endpoints", "map_writes"):
            values = [d[metric] for d in bench.identity["detail"]]
            rows.append(
                {
                    "scenario": scen,
                    "setup": "axoneme",
                    "datapath": "axoneme-bpf",
                    "rules": shape["rules"],
                    "metric": metric,
                    "median": statistics.median(values),
                    "unit": "endpoints" if metric == "affected_endpoints" else "entries",
                    "runs": len(values),
                    "samples": values,
                    "ratio_to_limit": None,
                }
            )
    return rows


def _fmt(value: float, unit: str) -> str:
    if unit == "us":
        return f"{value:.1f}"
    if unit == "Mb/s":
        return f"{value:.0f}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def datapath_table(rows: list[dict[str, Any]]) -> list[str]:
    dp = [r for r in rows if r["scenario"] == SCENARIO]
    setups = list(dict.fromkeys(r["setup"] for r in dp))
    by = {(r["setup"], r["metric"]): r for r in dp}
    head = " | ".join(f"{m} {u}" for m, u in METRICS.items())
    lines = [f"| setup | {head} |", "|---|" + "---|" * len(METRICS)]
    for setup in setups:
        cells = []
        for metric, unit in METRICS.items():
            r = by[(setup, metric)]
            cell = f"{_fmt(r['median'], unit)} [{_fmt(r['min'], unit)}-{_fmt(r['max'], unit)}]"
            if setup != "none":
                cell += f" ({r['ratio_to_limit']:.2f}x)"
            cells.append(cell)
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    return lines


def program_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| setup | program ms (median [min-max]) | what |", "|---|---|---|"]
    for r in rows:
        if r["scenario"] != "program the pod-to-pod rules":
            continue
        if r["datapath"] == "axoneme-bpf":
            d = r["detail"]
            what = (
                f"resolve+build {d['compute_ms']:.1f} ms (of which selector cache "
                f"{d['selector_cache_ms']:.1f} ms) + sync_policy "
                f"{d['sync_policy_ms']:.1f} ms; {d['policy_entries']} policy entries, "
                f"{d['port_sets']} port sets (+ ipcache {d['ipcache_entries']} entries in "
                f"{d['sync_ipcache_ms']:.1f} ms; object load {d['load_ms']:.0f} ms)"
            )
        else:
            what = (
                f"`{r['datapath']}-restore` of {r['rules'] + IPT_TAIL} rules "
                "(incl. `ip netns exec`)"
            )
        lines.append(
            f"| {r['setup']} | {r['median']:.1f} [{r['min']:.1f}-{r['max']:.1f}] | {what} |"
        )
    return lines


def control_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| scenario | metric | median | [min-max] | runs |", "|---|---|---|---|---|"]
    for r in rows:
        if not r["scenario"].startswith(("program policy", "new identity")):
            continue
        rng = f"[{r['min']:.1f}-{r['max']:.1f}]" if "min" in r else ""
        med = r["median"]
        med_s = f"{med:.1f} {r['unit']}" if r["unit"] == "ms" else f"{med:g} {r['unit']}"
        lines.append(f"| {r['scenario']} | {r['metric']} | {med_s} | {rng} | {r['runs']} |")
    return lines


def tool_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    return (
        (proc.stdout or proc.stderr).strip().splitlines()[0]
        if (proc.stdout or proc.stderr).strip()
        else "?"
    )


def machine_info() -> dict[str, Any]:
    uname = platform.uname()
    info: dict[str, Any] = {
        "hostname": uname.node,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "arch": uname.machine,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "iptables": tool_version(["iptables", "--version"]),
        "iptables_legacy": tool_version(["iptables-legacy", "--version"]),
        "bpf_object": str(DEFAULT_OBJECT),
    }
    dpkg = run(["dpkg-query", "-W", "-f", "${Version}", "qperf"], check=False)
    info["qperf"] = dpkg.stdout.strip() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
        info["tcp_congestion_control"] = (
            Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
        )
    except OSError:
        pass
    rev = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False)
    if rev.returncode == 0:
        info["axoneme_commit"] = rev.stdout.strip()
    return info


def write_results(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy_datapath.json").write_text(json.dumps(report, indent=1) + "\n")
    m, cfg, rows = report["machine"], report["config"], report["rows"]
    ident = report.get("identity_detail", [])
    md = [
        "# Policy datapath: Axoneme eBPF vs iptables, and the control plane",
        "",
        f"Run {report['created']} by `bench/policy_datapath.py`"
        + (" `--quick`" if cfg["quick"] else "")
        + f": {cfg['rounds']} round(s), setups interleaved (rotated per round), qperf "
        f"`-t {cfg['qperf_seconds']}`, {cfg['rules']} / {10 * cfg['rules']} rules. Machine: "
        f"{m.get('os', '?')}, kernel {m['kernel']}, {m['cpus']} CPUs "
        f"({m.get('cpu_model', '?')}), {m.get('iptables', '?')}, qperf {m.get('qperf', '?')}, "
        f"axoneme {m.get('axoneme_commit', '?')}, load average {report['loadavg_start']} at "
        f"start, {report['loadavg_end']} at the end. Wall time {report['wall_seconds']:.0f} s.",
        "",
        "## Data path: pod to pod on one node (qperf, msg_size 4K)",
        "",
        "Median [min-max] over the rounds (ratio to `none`, the limit). Latency: lower is "
        "better; bandwidth: higher is better. `udp_bw` is the receiver's rate.",
        "",
        *datapath_table(rows),
        "",
        "qperf runs retried (no result; the datapath dropped nothing): "
        + (json.dumps(report["retried"]) if report["retried"] else "none")
        + ". 1-min load average before each run: "
        + ", ".join(
            f"{r['setup']} {r['loadavg_1m']}"
            for r in rows
            if r["scenario"] == SCENARIO and r["metric"] == "tcp_lat"
        )
        + ".",
        "",
        "Programming the rules of each setup (Axoneme once, iptables at every rebuild):",
        "",
        *program_table(rows),
        "",
        "## Control plane",
        "",
        f"Cluster shape: {json.dumps(report['cluster_shape'])}. (i) is "
        f"{cfg['cp_rounds']} round(s) into fresh maps; (ii) is {cfg['arrivals']} new "
        "identities one after another, then full regenerations (what the agent does today) "
        "that must change nothing.",
        "",
        *control_table(rows),
        "",
        "New identities:",
        "",
        "| identity | changed selectables | affected endpoints | map writes |",
        "|---|---|---|---|",
        *(
            f"| {d['identity']} `{' '.join(d['labels'])}` | {d['changed_selectables']} | "
            f"{d['affected_endpoints']} | {d['map_writes']} |"
            for d in ident
        ),
        "",
        "Method: `bench/README.md` and the module docstring.",
        "",
    ]
    (out / "policy_datapath.md").write_text("\n".join(md))


# --- entry point ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: qperf -t 2, 1 round, 100 rules, 100 endpoints x 100 rules",
    )
    p.add_argument("--rounds", type=int, help="data-path rounds (default 3)")
    p.add_argument("--time", type=int, help="qperf -t seconds per test (default 5)")
    p.add_argument("--rules", type=int, help="rules R; setups use R and 10 R (default 1000)")
    p.add_argument("--cp-endpoints", type=int, help="control plane endpoints (default 1000)")
    p.add_argument("--cp-rules", type=int, help="control plane rules (default 1000)")
    p.add_argument("--cp-rounds", type=int, help="control plane (i) rounds (default 3)")
    p.add_argument("--arrivals", type=int, help="new identities in (ii) (default 5)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    p.add_argument(
        "--control-plane-only",
        action="store_true",
        help="skip the data path part (bench/run.py measures the data path itself)",
    )
    args = p.parse_args(argv)
    q = args.quick
    for name, full, quick in (
        ("rounds", 3, 1),
        ("time", 5, 2),
        ("rules", 1000, 100),
        ("cp_endpoints", 1000, 100),
        ("cp_rules", 1000, 100),
        ("cp_rounds", 3, 1),
        ("arrivals", 5, 2),
    ):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    if (
        args.rounds < 1
        or args.time < 1
        or not 1 <= args.rules <= 20_000
        or not 100 <= args.cp_endpoints <= 25_000
        or args.cp_rules < 1
        or args.cp_rounds < 1
        or args.arrivals < 1
    ):
        p.error(
            "need --rounds/--time/--cp-rounds/--arrivals >= 1, 1 <= --rules <= 20000, "
            "100 <= --cp-endpoints <= 25000, --cp-rules >= 1"
        )
    return args


def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, BPF)"
    for tool in ("ip", "qperf", "iptables-nft-restore"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install iproute2 qperf iptables)"
    if not DEFAULT_OBJECT.is_file() and not os.environ.get("AXONEME_BPF_OBJECT"):
        return f"needs the BPF object {DEFAULT_OBJECT} (make -C bpf)"
    return None


def loadavg_1m() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = prerequisites()
    if problem:
        print(f"policy_datapath: {problem}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(msg, flush=True)

    started = time.monotonic()
    with exclusive_run(LOCK_FILE, say):
        bench = Bench(args)
        load_start = loadavg()

        def body() -> None:
            for line in bench.sweep_stale():
                say(line)
            if not args.control_plane_only:
                bench.make_setups()
            say(
                f"policy_datapath: {len(bench.setups)} setups x {args.rounds} round(s), qperf "
                f"-t {args.time}; control plane {args.cp_endpoints} endpoints x "
                f"{args.cp_rules} rules"
            )
            if not args.control_plane_only:
                bench.run_datapath(say)
            bench.run_control_plane(say)

        status = guarded_run("policy_datapath", body, bench.cleanup, (BenchError,))
        if status != 0:
            return status

    rows = summarize(bench)
    report = {
        "benchmark": "policy_datapath",
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "quick": args.quick,
            "control_plane_only": args.control_plane_only,
            "rounds": args.rounds,
            "qperf_seconds": args.time,
            "qperf": f"qperf -lp {QPERF_LISTEN} -ip {QPERF_DATA} -t {args.time} {B_IP} -ub "
            f"-oo msg_size:4K -vu {' '.join(QPERF_TESTS)}",
            "rules": args.rules,
            "setups": [s.key for s in bench.setups],
            "cp_endpoints": args.cp_endpoints,
            "cp_rules": args.cp_rules,
            "cp_rounds": args.cp_rounds,
            "arrivals": args.arrivals,
            "interleaved": "every setup once per round, order rotated per round; "
            "topology rebuilt for every measurement",
        },
        "machine": machine_info(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "wall_seconds": round(time.monotonic() - started, 1),
        "cluster_shape": bench.cluster_shape,
        "identity_detail": bench.identity.get("detail", []),
        "retried": {s.key: s.failures for s in bench.setups if s.failures},
        "rows": rows,
    }
    write_results(args.out, report)
    say("")
    for line in [*datapath_table(rows), "", *program_table(rows), "", *control_table(rows)]:
        say(line)
    say(
        f"\nwrote {args.out / 'policy_datapath.json'} and {args.out / 'policy_datapath.md'} "
        f"({report['wall_seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
