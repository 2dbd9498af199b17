"""Run resolved probes concurrently on one asyncio loop and report them.

Each probe's socket is created inside the source network namespace (see
:func:`axoneme.kit.netns.socket_in`) and then driven from the loop thread, so
hundreds of probes wait in parallel while only socket creation is serial.

Outcomes: ``reachable`` (TCP connected / UDP payload echoed), ``refused`` (an
explicit negative answer: RST, ICMP port/host/net unreachable) and ``timeout``
(silence, or any other error, which the detail then names).
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from axoneme.kit import netns
from axoneme.probe.spec import ProbeSpec

__all__ = [
    "Outcome",
    "ProbeError",
    "ProbeResult",
    "ProbeTarget",
    "exit_code",
    "format_result",
    "probe",
    "probe_many",
    "worst_exit_code",
]

Outcome = Literal["reachable", "refused", "timeout"]

# Errors that mean "something answered no", as opposed to silence.
REFUSED_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})
# Linux value; the socket module lacks the name. Makes ICMP host/net unreachable
# visible on a connected UDP socket (without it only port unreachable is reported).
IP_RECVERR = 11
_EXIT_CODES: dict[Outcome, int] = {"reachable": 0, "refused": 1, "timeout": 2}
_UDP_MAX = 2048


class ProbeError(Exception):
    """A probe could not be started at all (e.g. the source netns is missing)."""


@dataclass(frozen=True)
class ProbeTarget:
    """A probe with names already resolved: source netns path/name and IPv4 destination."""

    src_netns: str
    dst_ip: str
    port: int
    proto: Literal["TCP", "UDP"]


@dataclass(frozen=True)
class ProbeResult:
    """What happened; ``rtt_ms`` is set only when something answered."""

    outcome: Outcome
    rtt_ms: float | None
    detail: str


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _errno_name(code: int | None) -> str:
    return errno.errorcode.get(code, str(code)) if code is not None else "E?"


def _from_oserror(exc: OSError, start: float) -> ProbeResult:
    name = _errno_name(exc.errno)
    text = os.strerror(exc.errno) if exc.errno is not None else str(exc)
    if exc.errno in REFUSED_ERRNOS:
        return ProbeResult("refused", _elapsed_ms(start), f"{name} ({text})")
    return ProbeResult("timeout", None, f"error {name} ({text})")


def _open(target: ProbeTarget) -> socket.socket:
    kind = socket.SOCK_STREAM if target.proto == "TCP" else socket.SOCK_DGRAM
    try:
        return netns.socket_in(target.src_netns, socket.AF_INET, kind)
    except OSError as exc:
        raise ProbeError(f"cannot open socket in netns {target.src_netns}: {exc}") from exc


async def _probe_tcp(sock: socket.socket, target: ProbeTarget) -> ProbeResult:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    try:
        await loop.sock_connect(sock, (target.dst_ip, target.port))
    except OSError as exc:
        return _from_oserror(exc, start)
    return ProbeResult("reachable", _elapsed_ms(start), "connected")


async def _probe_udp(sock: socket.socket, target: ProbeTarget) -> ProbeResult:
    loop = asyncio.get_running_loop()
    # A nonce tells our echo from stray or late datagrams.
    payload = b"axoneme-probe " + secrets.token_hex(8).encode()
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    start = time.perf_counter()
    try:
        # connect() on UDP only sets the peer, so ICMP errors reach this socket.
        await loop.sock_connect(sock, (target.dst_ip, target.port))
        await loop.sock_sendall(sock, payload)
        while await loop.sock_recv(sock, _UDP_MAX) != payload:
            pass
    except OSError as exc:
        return _from_oserror(exc, start)
    return ProbeResult("reachable", _elapsed_ms(start), "echoed")


# The timeout is per probe and decides the outcome, not a cancel scope for the caller.
async def probe(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Probe one target; raise :class:`ProbeError` only if no socket could be made."""
    with _open(target) as sock:
        try:
            async with asyncio.timeout(timeout):
                if target.proto == "TCP":
                    return await _probe_tcp(sock, target)
                return await _probe_udp(sock, target)
        except TimeoutError:
            silence = "no answer" if target.proto == "TCP" else "no echo"
            return ProbeResult("timeout", None, f"{silence} within {timeout:g}s")


async def probe_many(
    targets: Sequence[ProbeTarget],
    timeout: float,
    concurrency: int = 256,
) -> list[ProbeResult]:
    """Probe all targets with at most ``concurrency`` in flight; results in input order."""
    if concurrency < 1:
        raise ValueError(f"concurrency: {concurrency} is not >= 1")
    gate = asyncio.Semaphore(concurrency)
    results: list[ProbeResult | None] = [None] * len(targets)

    async def one(index: int, target: ProbeTarget) -> None:
        async with gate:
            results[index] = await probe(target, timeout)

    try:
        async with asyncio.TaskGroup() as group:
            for index, target in enumerate(targets):
                group.create_task(one(index, target), name=f"probe-{index}")
    except ExceptionGroup as failed:
        # Unwrap the common case so callers can catch ProbeError directly.
        setup, other = failed.split(ProbeError)
        if setup is not None and other is None:
            raise setup.exceptions[0] from failed
        raise
    return [result for result in results if result is not None]


def format_result(spec: ProbeSpec | str, result: ProbeResult) -> str:
    """One greppable line; the first word is the outcome, e.g.

    ``reachable  demo/a -> demo/b:80/TCP  rtt=0.21ms  connected``
    """
    what = spec.describe() if isinstance(spec, ProbeSpec) else spec
    rtt = f"rtt={result.rtt_ms:.2f}ms" if result.rtt_ms is not None else "rtt=-"
    return f"{result.outcome:<9}  {what}  {rtt}  {result.detail}".rstrip()


def exit_code(result: ProbeResult) -> int:
    """0 reachable, 1 refused, 2 timeout."""
    return _EXIT_CODES[result.outcome]


def worst_exit_code(results: Sequence[ProbeResult]) -> int:
    """The highest :func:`exit_code` of ``results`` (0 when there are none)."""
    return max((exit_code(result) for result in results), default=0)
