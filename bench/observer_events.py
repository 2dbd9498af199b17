"""Observer throughput and latency: events read from the ring, flows decoded for a
follower, and the time from a dropped packet to its line in ``axoneme observe --follow``.

Part 1, events read without loss. ``bpf/build/tests/events_gen.o`` (64 DROP events per
run through the datapath's own ``event_send``) is driven by ``BPF_PROG_TEST_RUN`` with a
repeat count from a producer thread (the syscall releases the GIL; the kernel does the
work), paced to an offered rate. The consumer is the agent's path: the ring-buffer
reader thread (``observer.agent.read_ring`` over ``RingBatchReader``) hands batches to an
``Observer`` on an asyncio loop, which keeps them and counts the flow metrics. For each
rate: events produced, read, and lost (the kernel's ring-full counter). ``max`` is the
producer unpaced.

Part 2, flows decoded, enriched and filtered for a following client: records with
addresses drawn from a directory of 200 endpoints are ingested in batches of 4,096 while
a follower (``Observer.follow`` with a filter that keeps about half) consumes them: a
flow per record decoded, both ends resolved, the filter applied; then the same with each
kept flow turned into its ``GetFlowsResponse`` (what the gRPC server sends).

Part 3 (needs the lab lock; skipped with ``--no-lab``): a 2-node lab, a pod denied by
policy; ``axoneme observe --follow -t drop`` runs (through the relay, and straight from
the node); each sample times a SYN sent from the pod to the line appearing on the
command's stdout.

Every part repeats ``--rounds`` times; values are medians. Writes
``observer_events.json`` (``rows`` as ``bench/run.py`` reads them) and ``.md`` in --out.
Run as root: ``.venv/bin/python bench/observer_events.py [--quick] [--no-lab]``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from axoneme.datapath import events as E
from axoneme.datapath.linux import bpfsys, libbpf
from axoneme.datapath.linux.loader import Datapath, ensure_bpffs
from axoneme.datapath.linux.maps import MetricsMap
from axoneme.datapath.linux.ringbatch import RingBatchReader
from axoneme.observer.agent import read_ring
from axoneme.observer.core import Observer, parse_request, response
from axoneme.observer.directory import EndpointMeta, build_directory
from axoneme.observer.flow import EVENT_DTYPE
from axoneme.observer.metrics import FlowMetrics
from axoneme.observer.proto import observer_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
GEN = REPO / "bpf/build/tests/events_gen.o"
OUT = REPO / "bench/results"
LAB_LOCK = Path("/run/axoneme-test.lock")
PER_RUN = 64


def row(scenario: str, metric: str, samples: list[float], unit: str) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "datapath": "axoneme",
        "metric": metric,
        "median": statistics.median(samples),
        "unit": unit,
        "runs": len(samples),
        "samples": samples,
    }


# ---- part 1: the ring ------------------------------------------------------------


def _produce(prog_fd: int, rate: float | None, seconds: float) -> int:
    """Offer ``rate`` events/s (None: as fast as the kernel goes); returns events produced."""
    ctx = bytearray(192)
    struct.pack_into("=II", ctx, 48, PER_RUN, 0)
    packet = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes(40)
    repeat = 16 if rate is None else max(1, int(rate / 2000 / PER_RUN))  # ~0.5 ms chunks
    chunk = repeat * PER_RUN
    produced = 0
    start = time.monotonic()
    while (now := time.monotonic() - start) < seconds:
        if rate is not None and produced > rate * now:
            time.sleep(min(0.0005, produced / rate - now))
            continue
        bpfsys.prog_test_run(prog_fd, packet, ctx=bytes(ctx), repeat=repeat)
        produced += chunk
    return produced


def _producer(prog_fd: int, rate: float | None, seconds: float) -> tuple[int, int, int]:
    """Fork the producer (its own process: no GIL shared with the reader); it waits for a
    byte on ``go`` and writes its count to ``done``. Returns (pid, go, done)."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: syscalls only, then _exit
        status = 1
        try:
            os.read(go_r, 1)
            os.write(done_w, str(_produce(prog_fd, rate, seconds)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(go_r)
    os.close(done_w)
    return pid, go_w, done_r


def ring_round(
    obj: libbpf.BpfObject, pin_dir: Path, rate: float | None, seconds: float
) -> dict[str, float]:
    pid, go, done = _producer(obj.program_fd("gen_events"), rate, seconds)

    async def consume() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        observer = Observer("bench", FlowMetrics(CollectorRegistry()))
        with (
            RingBatchReader(obj.map_fd("axo_events"), E.EVENT_SIZE) as reader,
            MetricsMap.open(pin_dir) as counters,
        ):
            lost_before = counters.lost_events()
            running = threading.Event()
            running.set()
            reading = asyncio.ensure_future(
                asyncio.to_thread(read_ring, reader, observer, loop, running)
            )
            t0 = time.monotonic()
            os.write(go, b"x")
            produced = int(await asyncio.to_thread(os.read, done, 64) or b"0")
            elapsed = time.monotonic() - t0
            deadline = time.monotonic() + 5
            lost = counters.lost_events() - lost_before
            while observer.seen + observer.lost_queue + lost < produced:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
                lost = counters.lost_events() - lost_before
            running.clear()
            await reading
            return {
                "offered": produced / elapsed,
                "produced": produced,
                "read": observer.seen,
                "lost_ring": lost,
                "lost_queue": observer.lost_queue,
                "read_per_s": observer.seen / elapsed,
            }

    try:
        return asyncio.run(consume())
    finally:
        os.close(go)
        os.close(done)
        os.waitpid(pid, 0)


def part_ring(
    rounds: int, rates: list[float | None], seconds: float
) -> tuple[list[dict[str, Any]], list[str]]:
    pin_dir = Path(f"/sys/fs/bpf/axb-observer-{uuid.uuid4().hex[:8]}")
    ensure_bpffs(pin_dir)
    pin_dir.mkdir()
    rows: list[dict[str, Any]] = []
    lines = []
    try:
        with libbpf.BpfObject(GEN, pin_root=pin_dir) as obj:
            obj.load()
            for rate in rates:
                name = "max" if rate is None else f"{rate / 1e6:g}M/s offered"
                results = [ring_round(obj, pin_dir, rate, seconds) for _ in range(rounds)]
                read = [r["read_per_s"] for r in results]
                lost = [100.0 * (r["lost_ring"] + r["lost_queue"]) / r["produced"] for r in results]
                rows.append(row(f"ring {name}", "events read/s", read, "events/s"))
                rows.append(row(f"ring {name}", "events lost", lost, "%"))
                offered = statistics.median(r["offered"] for r in results)
                ring_lost = sum(r["lost_ring"] for r in results)
                queue_lost = sum(r["lost_queue"] for r in results)
                total = sum(r["produced"] for r in results)
                lossless = sum(1 for r in results if r["lost_ring"] + r["lost_queue"] == 0)
                lines.append(
                    f"ring {name:>16}: offered {offered:,.0f}/s, read "
                    f"{statistics.median(read):,.0f}/s (median of {len(results)}); lost "
                    f"{100.0 * (ring_lost + queue_lost) / total:.3f}% of all produced "
                    f"(ring {ring_lost:,.0f}, queue {queue_lost:,.0f}); "
                    f"{lossless}/{len(results)} rounds without loss"
                )
                print(lines[-1], flush=True)
    finally:
        Datapath.remove(pin_dir)
    return rows, lines


# ---- part 2: decoding for a follower --------------------------------------------------


def synthetic(n: int, seed: int = 1) -> tuple[np.ndarray, Any]:
    rng = np.random.default_rng(seed)
    metas = [
        EndpointMeta(f"10.42.{1 + i // 100}.{2 + i % 100}", f"ns{i % 5}", f"pod-{i}", 256 + i,
                     (f"k8s:app=app{i % 10}", f"k8s:io.kubernetes.pod.namespace=ns{i % 5}"), i)
        for i in range(200)
    ]  # fmt: skip
    directory = build_directory(metas, {2: ["reserved:world"]})
    raw = np.zeros(n, dtype=EVENT_DTYPE)
    a, b = rng.integers(0, 200, n), rng.integers(0, 200, n)
    ips = np.array([int.from_bytes(socket.inet_aton(m.ip), "big") for m in metas], np.uint32)
    raw["ts_ns"] = np.arange(n) * 1000
    raw["type"] = rng.choice([1, 2, 3], n)
    raw["verdict"] = np.where(raw["type"] == 1, 2, 1)
    raw["dir"] = rng.integers(0, 2, n)
    raw["proto"] = 6
    raw["reason"] = np.where(raw["type"] == 1, 133, 0)
    raw["src_identity"], raw["dst_identity"] = 256 + a, 256 + b
    raw["saddr"], raw["daddr"] = ips[a], ips[b]
    raw["sport"], raw["dport"] = rng.integers(30000, 60000, n), rng.choice([80, 443, 53], n)
    raw["tcp_flags"] = 2
    return raw.view(np.uint8).reshape(n, E.EVENT_SIZE), directory


def decode_round(records: np.ndarray, directory: Any, proto: bool) -> tuple[float, int]:
    async def run() -> tuple[float, int]:
        observer = Observer("bench", capacity=65535)
        observer.set_directory_source(lambda: directory, lambda: 1)
        # About half: the 3 namespaces of 5, on the two ports of 3 that are TCP web.
        web = pb.FlowFilter(source_pod=["ns0/", "ns1/", "ns2/"], destination_port=["80", "443"])
        req = pb.GetFlowsRequest(follow=True, whitelist=[web, pb.FlowFilter(verdict=[pb.DROPPED])])
        query = parse_request(req)
        stream = observer.follow(query, 0)
        kept = 0
        t0 = time.perf_counter()
        for start in range(0, records.shape[0], 4096):
            observer.ingest(records[start : start + 4096])
            head = observer.ring.head
            # Drain what the batch made available (the follower keeps up).
            for flow in observer.ring.flows(max(start, observer.ring.oldest), head):
                if query.filters(flow):
                    kept += 1
                    if proto:
                        response(flow).SerializeToString()
        elapsed = time.perf_counter() - t0
        del stream
        return records.shape[0] / elapsed, kept

    return asyncio.run(run())


def part_decode(rounds: int, n: int) -> tuple[list[dict[str, Any]], list[str]]:
    records, directory = synthetic(n)
    rows, lines = [], []
    for proto, label in ((False, "decode+enrich+filter"), (True, "decode+enrich+filter+protobuf")):
        samples = []
        kept = 0
        for _ in range(rounds):
            rate, kept = decode_round(records, directory, proto)
            samples.append(rate)
        rows.append(row(f"follower {label}", "flows/s", samples, "flows/s"))
        lines.append(f"follower {label}: {statistics.median(samples):,.0f} flows/s "
                     f"({kept:,} of {n:,} kept by the filter)")  # fmt: skip
        print(lines[-1], flush=True)
    return rows, lines


# ---- part 3: drop to screen -----------------------------------------------------------


def _syn(netns: str, ip: str, port: int) -> None:
    from axoneme.kit.netns import socket_in

    s = socket_in(f"/run/netns/{netns}", socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect_ex((ip, port))  # non-blocking: the SYN leaves now; policy drops it
    finally:
        s.close()


def _latencies(cmd: list[str], netns: str, ip: str, samples: int) -> list[float]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out: list[float] = []
    try:
        time.sleep(2.0)  # the stream is open
        for i in range(samples):
            t0 = time.monotonic()
            _syn(netns, ip, 81)
            ready, _, _ = select.select([proc.stdout], [], [], 5)
            if not ready:
                raise RuntimeError(f"no line within 5 s for sample {i} of {' '.join(cmd[-6:])}")
            proc.stdout.readline()
            out.append((time.monotonic() - t0) * 1000)
            time.sleep(0.2)
            # A retransmitted SYN may print a second line: drain it before the next sample.
            while select.select([proc.stdout], [], [], 0)[0]:
                if not proc.stdout.readline():
                    break
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    return out


def _pod(name: str, node: str, ports: list[dict[str, int]]) -> dict[str, Any]:
    container = {"name": "m", "image": "axoneme/workload", "ports": ports}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bobs", "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [container]},
    }


LAB_OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bobs"}},
    _pod("web", "node2", [{"containerPort": 80}]),
    _pod("src", "node1", []),
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web-80", "namespace": "bobs"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"ports": [{"port": 80}]}],
        },
    },
]


def part_latency(samples: int) -> tuple[list[dict[str, Any]], list[str]]:
    from axoneme.lab import control
    from axoneme.lab.topology import LabConfig, pod_netns

    ax = [sys.executable, "-m", "axoneme.cli.main"]
    with open(LAB_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        control.down(grace=5.0)
        try:
            control.up(LabConfig(nodes=2))
            manifest = "\n---\n".join(json.dumps(o) for o in LAB_OBJECTS)
            subprocess.run([*ax, "apply", "-f", "-"], input=manifest, text=True, check=True,
                           capture_output=True)  # fmt: skip
            deadline = time.monotonic() + 60
            pods: dict[str, Any] = {}
            while time.monotonic() < deadline:
                got = json.loads(
                    subprocess.run(
                        [*ax, "get", "pods", "-n", "bobs", "-o", "json"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                pods = {p["metadata"]["name"]: p for p in got["items"]}
                if (
                    all(p.get("status", {}).get("phase") == "Running" for p in pods.values())
                    and len(pods) == 2
                ):
                    break
                time.sleep(0.3)
            src = pods["src"]
            netns = pod_netns("bobs", "src", src["metadata"]["uid"])
            web_ip = pods["web"]["status"]["podIP"]
            time.sleep(2)  # policy programmed
            follow = [
                *ax,
                "observe",
                "--follow",
                "-t",
                "drop",
                "--from-pod",
                "bobs/src",
                "--to-port",
                "81",
            ]
            rows, lines = [], []
            for where, extra in (("relay", []), ("node", ["--node", "node2"])):
                got = _latencies([*follow, *extra], netns, web_ip, samples)
                rows.append(row(f"drop to screen via {where}", "latency", got, "ms"))
                lines.append(f"drop to screen via {where}: median {statistics.median(got):.1f} ms, "
                             f"max {max(got):.1f} ms over {len(got)}")  # fmt: skip
                print(lines[-1], flush=True)
            return rows, lines
        finally:
            control.down()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round, short runs, fewer rates")
    p.add_argument("--no-lab", action="store_true", help="skip the drop-to-screen latency")
    p.add_argument("--rounds", type=int, help="rounds per measurement (default 3, quick 1)")
    p.add_argument("--out", type=Path, default=OUT)
    ns = p.parse_args()
    if os.geteuid() != 0:
        print("observer_events: run as root (bpf())", file=sys.stderr)
        return 2
    if not GEN.exists():
        print(f"observer_events: {GEN} is missing: run make -C bpf", file=sys.stderr)
        return 2
    rounds = ns.rounds or (1 if ns.quick else 3)
    if rounds < 1:
        print(f"--rounds: {rounds} must be at least 1", file=sys.stderr)
        return 2
    rates: list[float | None] = [1e6, 2e6, None] if ns.quick else [5e5, 1e6, 2e6, 4e6, None]
    rows, lines = part_ring(rounds, rates, 1.0 if ns.quick else 3.0)
    more, text = part_decode(rounds, 100_000 if ns.quick else 400_000)
    rows += more
    lines += text
    if not ns.no_lab:
        more, text = part_latency(5 if ns.quick else 20)
        rows += more
        lines += text
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / "observer_events.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    (ns.out / "observer_events.md").write_text(
        "# Observer events\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
