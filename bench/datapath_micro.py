"""Micro benchmarks of the endpoint datapath: the programs' cost per packet and the
rates at which Python writes the maps.

Setup (not timed). A namespace ``axb-micro`` holds one veth pair ``va``/``vb``;
``BPF_PROG_TEST_RUN`` resolves ``skb->ifindex`` in the caller's namespace, so every run
happens inside it. The endpoint object (``bpf/build/bpf_lxc.o``, built first with
``make -s -C bpf``) is loaded by ``Datapath.open`` into ``/sys/fs/bpf/axb-micro``.
``vb`` is endpoint B (10.0.0.2, identity 1002) with ingress enforced; B allows
identity 1001 (10.0.0.1) on TCP port 80; ``va`` is no endpoint. 2,000 other identities
are in the ipcache (one /32 each) and in B's ingress policy, so lookups hit maps of a
realistic size. A connection A:40000 -> B:80 is opened (SYN in, SYN-ACK out): it is
established in conntrack.

Cost per packet (ns). ``BPF_PROG_TEST_RUN`` of ``to_container`` with a repeat count;
the kernel times the loop and returns the mean per run. Paths:

- ``established (CT hit)``: an ACK of that connection into B;
- ``new connection denied (policy path)``: a SYN from A to B's port 81: conntrack miss
  both ways, ipcache, the policy lookups, denied (133), a policy-verdict and a drop event
  per packet. The ring (4 MiB) is emptied before each run and holds every event of one;
- ``not an endpoint (pass-through)``: an ACK on ``va``, which is in no map: the
  programs' floor, and the limit the other paths divide by.

Every path runs the same number of packets per call (``--quick``: fewer); a round's value
is the median of its calls. Checked at every call, or the run fails: the verdict
(TC_ACT_OK 0, TC_ACT_SHOT 2); the connection's packet counter grows by exactly the repeat
count (every packet hit conntrack) and no event is sent; the denied path sends exactly
one policy verdict and one drop (reason 133) per packet, loses none and creates no
conntrack entry; the pass-through sends nothing and creates nothing.

Map writes (entries/s). 50,000 new entries (``--quick``: 10,000) written from Python
through the product's map classes, each timed by ``perf_counter`` around the loop:
``PolicyMap.set`` with prebuilt keys; ``raw.update`` of prepacked bytes (no Python
packing: the limit the others divide by); ``PolicyMap.set_many`` (one
``MAP_UPDATE_BATCH``, packing included); ``IPCacheMap.set`` of prebuilt /32 prefixes
(172.16/16, LPM trie). Each writes into the maps as set up above, with a value new to
the round; afterwards (not timed) every entry must hold that value, the policy map must
hold exactly the n entries besides the setup's, and the entries are deleted again.

Rounds (default 5, ``--quick`` 2): every scenario once per round, in an order rotated
from round to round; rows are medians over the rounds, ratios divide medians by the
limit's. Writes ``datapath_micro.json`` (``rows`` in ``bench/run.py``'s family format)
and ``datapath_micro.md`` in ``--out``.

Runs hold ``flock`` on ``/run/axb-bench.lock``; a run first removes what a killed one
left (the namespace, the pin directory), and removes both on every exit path. Exit
status: 0 measured, 1 a check or the clean-up failed, 2 prerequisites, 130 interrupted.
Run as root: ``.venv/bin/python bench/datapath_micro.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import commit_of_tree, exclusive_run, guarded_run

from axoneme.datapath import events as ev
from axoneme.datapath.linux import bpfsys
from axoneme.datapath.linux.loader import Datapath, DatapathError
from axoneme.datapath.linux.maps import (
    INGRESS,
    CtKey,
    IPCacheValue,
    LxcInfo,
    PolicyKey,
    lxc_flags,
)
from axoneme.datapath.linux.ringbatch import RingBatchReader
from axoneme.datapath.portsets import port_entries
from axoneme.kit.netns import entered
from axoneme.observer.flow import EVENT_DTYPE
from axoneme.policy.types import PortVerdicts

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench/results"
LOCK_FILE = Path("/run/axb-bench.lock")
NETNS = "axb-micro"
PIN_DIR = Path("/sys/fs/bpf/axb-micro")
VETH_A, VETH_B = "va", "vb"

TC_ACT_OK, TC_ACT_SHOT = 0, 2
TCP, SYN, ACK = 6, 0x02, 0x10
POLICY_DENIED = 133
A_IP, B_IP = "10.0.0.1", "10.0.0.2"
A_ID, B_ID = 1001, 1002
B_EP = 2
PORT_SET = 10
BACKGROUND = 2000  # other identities in the ipcache and in B's policy
WRITE_IDENTITY = 100_000  # first identity of the written policy keys (none of the setup's)

DATAPATH = "axoneme"
PASS_THROUGH = "not an endpoint (pass-through)"
RAW_WRITE = "policy map: raw bytes update"
NS_PER_PACKET, WRITE_RATE = "ns_per_packet", "entries_per_s"


class BenchError(Exception):
    """A measurement, a check or the setup went wrong."""


# ---- packets ------------------------------------------------------------------------------


def _csum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    """An Ethernet frame with an IPv4 TCP segment (no payload, no options)."""
    segment = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0, 64, TCP, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _csum(header)) + header[12:]
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + header + segment


def skb_ctx(ifindex: int) -> bytes:
    """A ``struct __sk_buff`` (192 bytes) with only ifindex (offset 40) set."""
    ctx = bytearray(192)
    struct.pack_into("=I", ctx, 40, ifindex)
    return bytes(ctx)


# ---- the bench ----------------------------------------------------------------------------


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc.stdout


def netns_exists() -> bool:
    return Path(f"/run/netns/{NETNS}").exists()


@dataclass
class Scenario:
    name: str
    metric: str
    unit: str
    measure: Callable[[int], float]  # round -> the round's value
    samples: list[float] = field(default_factory=list)


class Bench:
    def __init__(self, rounds: int, repeat: int, calls: int, entries: int) -> None:
        if entries > 65_536:
            raise ValueError("entries: at most 65,536 (the ipcache prefixes are in 172.16/16)")
        self.rounds, self.repeat, self.calls, self.entries = rounds, repeat, calls, entries
        self.dp: Datapath | None = None
        self.ring: RingBatchReader | None = None
        self.a = self.b = 0
        self.conn = CtKey(A_IP, B_IP, 40000, 80, TCP, INGRESS)
        self.base_policy = 0
        self.policy_keys = [PolicyKey(WRITE_IDENTITY + i, B_EP, INGRESS) for i in range(entries)]
        self.packed_keys = [k.pack() for k in self.policy_keys]
        self.prefixes = [f"172.16.{i >> 8 & 255}.{i & 255}/32" for i in range(entries)]
        ns, rate = (NS_PER_PACKET, "ns"), (WRITE_RATE, "entries/s")
        self.scenarios = [
            Scenario("established (CT hit)", *ns, self.established),
            Scenario("new connection denied (policy path)", *ns, self.denied),
            Scenario(PASS_THROUGH, *ns, self.pass_through),
            Scenario("policy map: typed PolicyMap.set", *rate, self.typed_set),
            Scenario(RAW_WRITE, *rate, self.raw_update),
            Scenario("policy map: PolicyMap.set_many (batch)", *rate, self.set_many),
            Scenario("ipcache: typed IPCacheMap.set (LPM)", *rate, self.ipcache_set),
        ]

    # ---- setup and clean-up ---------------------------------------------------------------

    def sweep_stale(self) -> list[str]:
        """Remove what a killed earlier run left behind."""
        lines = []
        if netns_exists():
            subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
            lines.append(f"datapath_micro: removed a stale netns {NETNS}")
        if PIN_DIR.exists():
            Datapath.remove(PIN_DIR)
            lines.append(f"datapath_micro: removed a stale pin dir {PIN_DIR}")
        return lines

    def setup(self) -> None:
        sh("make", "-s", "-C", str(REPO / "bpf"))  # a no-op when the objects are up to date
        sh("ip", "netns", "add", NETNS)
        sh("ip", "-n", NETNS, "link", "add", VETH_A, "type", "veth", "peer", "name", VETH_B)
        links = {x["ifname"]: x["ifindex"] for x in json.loads(sh("ip", "-n", NETNS, "-j", "link"))}
        self.a, self.b = links[VETH_A], links[VETH_B]
        self.dp = dp = Datapath.open(PIN_DIR)
        if dp.reused:
            raise BenchError(f"{PIN_DIR} held a datapath already: nothing was loaded")
        fd = bpfsys.obj_get(PIN_DIR / "axo_events")
        try:
            self.ring = RingBatchReader(fd, ev.EVENT_SIZE)
        finally:
            os.close(fd)
        dp.lxc.set(self.b, LxcInfo(B_EP, B_ID, B_IP, lxc_flags(ingress_enforced=True),
                                   "02:00:00:00:00:0b"))  # fmt: skip
        dp.ipcache.set(f"{A_IP}/32", IPCacheValue(A_ID))
        dp.ipcache.set(f"{B_IP}/32", IPCacheValue(B_ID))
        port_80 = TCP << 16 | 80  # a point of the protocol/port line
        dp.ports.write_set(PORT_SET, port_entries(PortVerdicts(((port_80, port_80),), ())),
                           cookie=PORT_SET)  # fmt: skip
        dp.policy.set(PolicyKey(A_ID, B_EP, INGRESS), PORT_SET)
        for i in range(BACKGROUND):
            dp.ipcache.set(f"10.{1 + i // 250}.{i % 250}.1/32", IPCacheValue(5000 + i))
            dp.policy.set(PolicyKey(5000 + i, B_EP, INGRESS), PORT_SET)
        self.base_policy = len(dp.policy.raw.items())
        # The connection: SYN in (allowed, creates the entry), SYN-ACK out (its reply).
        self._expect("SYN A->B:80", self._run(self.b, tcp_frame(A_IP, B_IP, 40000, 80, SYN)),
                     TC_ACT_OK)  # fmt: skip
        reply = tcp_frame(B_IP, A_IP, 80, 40000, SYN | ACK)
        self._expect("SYN-ACK B->A", self._run(self.b, reply, "from_container"), TC_ACT_OK)
        value = dp.ct.get(self.conn)
        if value is None or not value.reply_seen:
            raise BenchError(f"the connection is not established in conntrack: {value}")
        # One untimed packet per path: the ACK's trace (new flags seen) happens here.
        self._run(self.b, tcp_frame(A_IP, B_IP, 40000, 80, ACK))
        self._run(self.b, tcp_frame(A_IP, B_IP, 40000, 81, SYN))
        self._run(self.a, tcp_frame(A_IP, B_IP, 1, 80, ACK))
        self._events()

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.dp is not None:
            self.dp.close()
            self.dp = None
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
        try:
            Datapath.remove(PIN_DIR)
        except (OSError, DatapathError) as exc:
            problems.append(f"removing {PIN_DIR}: {exc}")
        if netns_exists():
            problems.append(f"netns left: {NETNS}")
        if PIN_DIR.exists():
            problems.append(f"pin dir left: {PIN_DIR}")
        return problems

    # ---- packets ----------------------------------------------------------------------------

    @property
    def datapath(self) -> Datapath:
        if self.dp is None:
            raise BenchError("the datapath is not loaded")
        return self.dp

    def _run(
        self, ifindex: int, packet: bytes, program: str = "to_container", repeat: int = 1
    ) -> bpfsys.TestRun:
        with entered(NETNS):
            fd = self.datapath.program_fd(program)
            return bpfsys.prog_test_run(fd, packet, ctx=skb_ctx(ifindex), repeat=repeat)

    @staticmethod
    def _expect(what: str, run: bpfsys.TestRun, verdict: int) -> None:
        if run.retval != verdict:
            raise BenchError(f"{what}: verdict {run.retval}, expected {verdict}")

    def _events(self) -> np.ndarray:
        """Every event in the ring now (a structured array of EVENT_DTYPE)."""
        assert self.ring is not None
        batches = []
        while True:
            batch = self.ring.read()
            if batch.records.shape[0] == 0:
                break
            batches.append(np.ascontiguousarray(batch.records).view(EVENT_DTYPE)[:, 0])
        return np.concatenate(batches) if batches else np.empty(0, EVENT_DTYPE)

    def _ct_count(self) -> int:
        return len(self.datapath.ct.raw.items())

    def _packets(
        self, name: str, ifindex: int, packet: bytes, verdict: int,
        check: Callable[[np.ndarray], str | None],
    ) -> float:  # fmt: skip
        """The median over ``calls`` runs of ``repeat`` packets; each run checked."""
        self._events()
        values = []
        for _ in range(self.calls):
            run = self._run(ifindex, packet, repeat=self.repeat)
            self._expect(name, run, verdict)
            problem = check(self._events())
            if problem is not None:
                raise BenchError(f"{name}: {problem}")
            values.append(float(run.duration_ns))
        if self._ct_count() != 1:
            raise BenchError(f"{name}: conntrack holds {self._ct_count()} entries, expected 1")
        return statistics.median(values)

    def _conn_packets(self) -> int:
        value = self.datapath.ct.get(self.conn)
        if value is None:
            raise BenchError("the connection's conntrack entry is gone")
        return value.packets

    def established(self, _round: int) -> float:
        before = [self._conn_packets()]

        def check(events: np.ndarray) -> str | None:
            now = self._conn_packets()
            grew, before[0] = now - before[0], now
            if grew != self.repeat:
                return f"conntrack counted {grew} packets of {self.repeat}"
            return f"{events.shape[0]} events, expected none" if events.shape[0] else None

        packet = tcp_frame(A_IP, B_IP, 40000, 80, ACK)
        return self._packets("established", self.b, packet, TC_ACT_OK, check)

    def denied(self, _round: int) -> float:
        lost = [self.datapath.metrics.lost_events()]

        def check(events: np.ndarray) -> str | None:
            now = self.datapath.metrics.lost_events()
            gone, lost[0] = now - lost[0], now
            drops = events[events["type"] == ev.EVENT_DROP]
            verdicts = events[events["type"] == ev.EVENT_POLICY_VERDICT]
            if gone or events.shape[0] != 2 * self.repeat:
                return f"{events.shape[0]} events and {gone} lost, expected {2 * self.repeat}"
            if drops.shape[0] != self.repeat or verdicts.shape[0] != self.repeat:
                return f"{drops.shape[0]} drops and {verdicts.shape[0]} policy verdicts"
            if not np.all(drops["reason"] == POLICY_DENIED):
                return f"drop reasons {sorted(set(drops['reason'].tolist()))}, expected 133"
            return None

        packet = tcp_frame(A_IP, B_IP, 40000, 81, SYN)
        return self._packets("denied", self.b, packet, TC_ACT_SHOT, check)

    def pass_through(self, _round: int) -> float:
        def check(events: np.ndarray) -> str | None:
            return f"{events.shape[0]} events, expected none" if events.shape[0] else None

        packet = tcp_frame(A_IP, B_IP, 1, 80, ACK)
        return self._packets("not an endpoint", self.a, packet, TC_ACT_OK, check)

    # ---- map writes -------------------------------------------------------------------------

    def _timed(self, write: Callable[[], None]) -> float:
        gc.collect()
        started = time.perf_counter()
        write()
        return self.entries / (time.perf_counter() - started)

    def _policy_written(self, name: str, value: int) -> None:
        """Every written key holds ``value``, the map holds exactly n more entries than
        the setup's; then the keys are deleted again."""
        policy = self.datapath.policy.raw
        got = dict(policy.items())
        want = struct.pack("=I", value)
        wrong = sum(1 for k in self.packed_keys if got.get(k) != want)
        if wrong or len(got) != self.base_policy + self.entries:
            raise BenchError(
                f"{name}: {wrong} of {self.entries} entries without value {value}; the map "
                f"holds {len(got)} entries, expected {self.base_policy + self.entries}"
            )
        policy.delete_batch(self.packed_keys)

    @staticmethod
    def _value(round_: int, scenario: int) -> int:
        return 1_000 + 10 * round_ + scenario

    def typed_set(self, round_: int) -> float:
        value, policy = self._value(round_, 1), self.datapath.policy

        def write() -> None:
            for key in self.policy_keys:
                policy.set(key, value)

        rate = self._timed(write)
        self._policy_written("PolicyMap.set", value)
        return rate

    def raw_update(self, round_: int) -> float:
        value, raw = self._value(round_, 2), self.datapath.policy.raw
        packed = [(k, struct.pack("=I", value)) for k in self.packed_keys]

        def write() -> None:
            for k, v in packed:
                raw.update(k, v)

        rate = self._timed(write)
        self._policy_written("raw update", value)
        return rate

    def set_many(self, round_: int) -> float:
        value, policy = self._value(round_, 3), self.datapath.policy
        rate = self._timed(lambda: policy.set_many((k, value) for k in self.policy_keys))
        self._policy_written("PolicyMap.set_many", value)
        return rate

    def ipcache_set(self, round_: int) -> float:
        ipcache = self.datapath.ipcache
        value = IPCacheValue(self._value(round_, 4))
        pairs = [(p, value) for p in self.prefixes]

        def write() -> None:
            for prefix, v in pairs:
                ipcache.set(prefix, v)

        rate = self._timed(write)
        wrong = 0
        for prefix in self.prefixes:
            got = ipcache.lookup(prefix.removesuffix("/32"))
            wrong += got is None or got.identity != value.identity
        if wrong:
            raise BenchError(f"IPCacheMap.set: {wrong} of {self.entries} prefixes wrong")
        missing = sum(1 for prefix in self.prefixes if not ipcache.delete(prefix))
        if missing:
            raise BenchError(f"IPCacheMap.set: {missing} prefixes were not in the map")
        return rate

    # ---- rounds -----------------------------------------------------------------------------

    def run(self, say: Callable[[str], None]) -> None:
        n = len(self.scenarios)
        for r in range(self.rounds):
            order = self.scenarios[r % n :] + self.scenarios[: r % n]
            for s in order:
                s.samples.append(s.measure(r))
            say(f"round {r + 1}/{self.rounds}: " + ", ".join(
                f"{s.name} {s.samples[-1]:,.0f} {s.unit}" for s in self.scenarios
            ))  # fmt: skip


# ---- results ------------------------------------------------------------------------------


def _round(x: float) -> float:
    return round(x, 1) if abs(x) < 1000 else float(round(x))


def summarize(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    limits = {
        NS_PER_PACKET: next(s for s in scenarios if s.name == PASS_THROUGH),
        WRITE_RATE: next(s for s in scenarios if s.name == RAW_WRITE),
    }
    rows = []
    for s in scenarios:
        limit = limits[s.metric]
        median, base = statistics.median(s.samples), statistics.median(limit.samples)
        rows.append(
            {
                "scenario": s.name,
                "datapath": DATAPATH,
                "metric": s.metric,
                "median": _round(median),
                "unit": s.unit,
                "runs": len(s.samples),
                "samples": [_round(x) for x in s.samples],
                "ratio_to_limit": round(median / base, 3) if base > 0 else None,
                "limit": f"{DATAPATH} / {limit.name}",
            }
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    out = [
        "# Datapath micro benchmarks",
        "",
        f"{report['created']}, axoneme {report.get('commit') or '?'}, kernel "
        f"{report['kernel']}, {os.cpu_count()} CPUs; load average {report['loadavg_start']} "
        f"at the start, {report['loadavg_end']} at the end. {cfg['rounds']} rounds, scenarios "
        "in an order rotated per round; medians over the rounds. Method: "
        "`bench/datapath_micro.py`.",
        "",
    ]
    for metric, title in (
        (NS_PER_PACKET, f"BPF_PROG_TEST_RUN of to_container, mean ns per packet "
                        f"({cfg['calls']} calls of {cfg['repeat']:,} per round, median)"),
        (WRITE_RATE, f"Map writes from Python, {cfg['entries']:,} new entries"),
    ):  # fmt: skip
        rows = [r for r in report["rows"] if r["metric"] == metric]
        out += [f"## {title}", "", "| scenario | median | ratio | limit | per round |",
                "|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            ratio = "—" if r["ratio_to_limit"] is None else f"{r['ratio_to_limit']:.2f}x"
            rounds = ", ".join(f"{x:,.0f}" for x in r["samples"])
            out.append(f"| {r['scenario']} | {r['median']:,.0f} {r['unit']} | {ratio} | "
                       f"{r['limit'].split(' / ', 1)[1]} | {rounds} |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds, fewer packets and entries")
    p.add_argument("--rounds", type=int, help="rounds (default 5, quick 2)")
    p.add_argument("--out", type=Path, default=OUT, help=f"results directory (default {OUT})")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if not 1 <= args.rounds <= 50:
        p.error("--rounds must be in 1..50")
    # Per call: 20,000 denied packets send 40,000 events (2.9 MiB), within the 4 MiB ring.
    args.repeat = 5_000 if args.quick else 20_000
    args.calls = 3 if args.quick else 5
    args.entries = 10_000 if args.quick else 50_000
    return args


def prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (bpf(), bpffs, network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    if not (shutil.which("clang-19") or shutil.which("clang")):
        return "needs clang to build bpf/ (make deps installs it)"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = prerequisites()
    if problem:
        print(f"datapath_micro: {problem}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(msg, flush=True)

    with exclusive_run(LOCK_FILE, say):
        bench = Bench(args.rounds, args.repeat, args.calls, args.entries)
        load_start = loadavg()

        def body() -> None:
            for line in bench.sweep_stale():
                say(line)
            bench.setup()
            say(
                f"datapath_micro: {args.rounds} round(s); {args.calls} x {args.repeat:,} "
                f"packets per path, {args.entries:,} entries per map write"
            )
            bench.run(say)

        errors = (BenchError, OSError, DatapathError)
        status = guarded_run("datapath_micro", body, bench.cleanup, errors)
        if status != 0:
            return status
    rows = summarize(bench.scenarios)
    report = {
        "benchmark": "datapath_micro",
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit_of_tree(),
        "kernel": os.uname().release,
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "config": {
            "quick": args.quick,
            "rounds": args.rounds,
            "repeat": args.repeat,
            "calls": args.calls,
            "entries": args.entries,
            "background_identities": BACKGROUND,
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "datapath_micro.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "datapath_micro.md").write_text(markdown(report))
    for r in rows:
        ratio = "" if r["ratio_to_limit"] is None else f" ({r['ratio_to_limit']:.2f}x)"
        say(f"{r['scenario']}: {r['median']:,.0f} {r['unit']}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
