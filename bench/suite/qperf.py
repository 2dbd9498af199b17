"""qperf, as the reference document runs it: command line, output parsing, and one run
between two network namespaces.

``qperf -t N <ip> -ub -oo msg_size:4K -vu tcp_lat tcp_bw udp_lat udp_bw``, with the
control port (``--listen_port``) and the data port (``--ip_port``) fixed. The client sends
its ``--ip_port`` to the server, which binds it and answers with it; the client then
connects to the address it was given on that port. So through a Service or a NodePort
both ports must be forwarded with the port number unchanged, which is how the bench
declares its Services (port = targetPort = nodePort).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from axoneme.kit import cgroup
from axoneme.kit.netns import socket_in

TESTS = ("tcp_lat", "tcp_bw", "udp_lat", "udp_bw")  # the reference's order
# The reference's table columns, and the unit each is kept in.
METRICS: Mapping[str, str] = {
    "tcp_lat": "us",
    "udp_lat": "us",
    "tcp_bw": "Mb/s",
    "udp_send_bw": "Mb/s",
    "udp_recv_bw": "Mb/s",
}
LOWER_IS_BETTER = frozenset({"tcp_lat", "udp_lat"})

_TIME_UNITS = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "sec": 1e6, "s": 1e6}
_BW_UNITS = {"b/sec": 1e-6, "Kb/sec": 1e-3, "Mb/sec": 1.0, "Gb/sec": 1e3, "Tb/sec": 1e6}
_VALUE = re.compile(r"\s*(\w+)\s*=\s*([\d.,]+)\s*(\S+)")


class QperfError(Exception):
    """qperf could not run or gave no result."""


@dataclass(frozen=True)
class Ports:
    control: int
    data: int


def client_command(dst: str, ports: Ports, seconds: int) -> list[str]:
    return [
        "qperf",
        "--listen_port",
        str(ports.control),
        "--ip_port",
        str(ports.data),
        "-t",
        str(seconds),
        dst,
        "-ub",
        "-oo",
        "msg_size:4K",
        "-vu",
        *TESTS,
    ]


def parse(text: str) -> dict[str, float]:
    """qperf ``-vu`` output -> {metric: value in :data:`METRICS` units}.

    Only results: a test that got nothing through (qperf prints a latency of 0 ns or a
    received rate of 0 bits/sec) gives no value, and a send rate counts only beside a
    receive rate.
    """
    out: dict[str, float] = {}
    test = ""
    for line in text.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"\w+:", stripped):
            test = stripped[:-1]
            continue
        match = _VALUE.match(line)
        if not match or not test:
            continue
        name, value, unit = match.group(1), float(match.group(2).replace(",", "")), match.group(3)
        if name == "latency" and unit in _TIME_UNITS and test in ("tcp_lat", "udp_lat"):
            out[test] = value * _TIME_UNITS[unit]
        elif unit in _BW_UNITS:
            scaled = value * _BW_UNITS[unit]
            if test == "tcp_bw" and name == "bw":
                out["tcp_bw"] = scaled
            elif test == "udp_bw" and name == "send_bw":
                out["udp_send_bw"] = scaled
            elif test == "udp_bw" and name == "recv_bw":
                out["udp_recv_bw"] = scaled
    if "udp_recv_bw" not in out:
        out.pop("udp_send_bw", None)
    return {m: v for m, v in out.items() if v > 0}


@dataclass(frozen=True)
class Place:
    """Where a process runs: a network namespace, and the cgroup its sockets belong to.

    The cgroup matters for the socket load balancer: its hooks see only the sockets of
    processes in the node's cgroup, as a pod's own processes are.
    """

    netns: str
    cgroup: str | None = None


def _in(place: Place, cmd: list[str]) -> list[str]:
    # nsenter execs the command (no fork for a network namespace alone), and so does the
    # cgroup join: the PID we hold is qperf's. /sys is left alone (``ip netns exec``
    # remounts it).
    argv = ["nsenter", f"--net={place.netns}", *cmd]
    return cgroup.join_argv(Path(place.cgroup), argv) if place.cgroup else argv


def _listening(pid: int, port: int) -> bool:
    want = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        if any(f[1].endswith(want) and f[3] == "0A" for f in (line.split() for line in lines)):
            return True
    return False


def start_server(place: Place, ports: Ports, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A qperf server, listening once this returns; in its own session."""
    server = subprocess.Popen(
        _in(place, ["qperf", "--listen_port", str(ports.control)]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
        start_new_session=True,
    )
    deadline = time.monotonic() + 5
    while not _listening(server.pid, ports.control):
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise QperfError(f"qperf server in {place.netns} did not start ({server.poll()})")
        time.sleep(0.02)
    return server


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server and the children it forks per test
    proc.wait(timeout=10)


def run_client(
    place: Place, dst: str, ports: Ports, seconds: int, env: Mapping[str, str]
) -> dict[str, float]:
    """One qperf client run: the metrics it measured (:class:`QperfError` if none).

    A partial result (say UDP got nothing through while TCP did) is returned as is;
    the caller reports what is missing.
    """
    cmd = _in(place, client_command(dst, ports, seconds))
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            env=dict(env),
            timeout=seconds * len(TESTS) + 40,
        )
    except subprocess.TimeoutExpired as exc:
        raise QperfError(f"qperf to {dst} timed out") from exc
    values = parse(proc.stdout)
    if not values:
        tail = " ".join((proc.stdout + proc.stderr).split())[-300:]
        raise QperfError(f"qperf to {dst} gave no result (exit {proc.returncode}): {tail}")
    return values


class Unreachable(QperfError):
    """The path does not work at all (checked before qperf runs): not worth a retry."""


def connects(place: Place, dst: str, port: int, timeout: float = 3.0) -> str | None:
    """Open (and close) a TCP connection from ``place``; None, or why it failed."""
    with cgroup.joined(Path(place.cgroup)) if place.cgroup else contextlib.nullcontext():
        sock = socket_in(place.netns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((dst, port))
        return None
    except TimeoutError:
        return f"connecting to {dst}:{port} timed out"
    except OSError as exc:
        return f"connecting to {dst}:{port}: {exc.strerror or exc}"
    finally:
        sock.close()


def measure(
    server: Place,
    client: Place,
    dst: str,
    ports: Ports,
    seconds: int,
    env: Mapping[str, str],
) -> dict[str, float]:
    """Start a server, run the client against ``dst``, stop the server."""
    proc = start_server(server, ports, env)
    try:
        # A path that does not work fails here in seconds, not after qperf's own timeouts.
        problem = connects(client, dst, ports.control)
        if problem:
            raise Unreachable(problem)
        return run_client(client, dst, ports, seconds, env)
    finally:
        stop(proc)
