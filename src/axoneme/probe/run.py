"""Run resolved probes concurrently on one asyncio loop and report them.

Each probe's socket is created inside the source network namespace (see
:func:`axoneme.kit.netns.socket_in`) and then driven from the loop thread, so
hundreds of probes wait in parallel while only socket creation is serial.

Outcomes: ``reachable`` (TCP connected / UDP payload echoed / SCTP INIT
answered with INIT ACK), ``refused`` (an explicit negative answer: RST, SCTP
ABORT, ICMP port/protocol/host/net unreachable) and ``timeout`` (silence, or
any other error, which the detail then names).

SCTP has no sockets on the lab's kernel: the probe sends INIT itself on a raw
``IPPROTO_SCTP`` socket of its own (:mod:`axoneme.kit.sctp`). That socket sees
every SCTP packet arriving in the namespace, so replies are matched by peer
address, ports and verification tag; each probe uses a random source port and
Initiate Tag, and answers an INIT ACK with ABORT so the peer keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from axoneme.kit import cgroup, netns, sctp
from axoneme.probe.spec import ProbeSpec, Proto

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
# ENOPROTOOPT is ICMP protocol unreachable: a host without SCTP.
REFUSED_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOPROTOOPT}
)
# Linux value; the socket module lacks the name. Makes ICMP host/net unreachable
# visible on a connected UDP socket (without it only port unreachable is reported).
IP_RECVERR = 11
_EXIT_CODES: dict[Outcome, int] = {"reachable": 0, "refused": 1, "timeout": 2}
_UDP_MAX = 2048
_RAW_MAX = 65535
# INIT is sent again after this long without an answer (RFC 4960's RTO.Initial is
# 3 s, longer than a probe's usual timeout; one lost INIT must not make a timeout).
SCTP_RETRANSMIT = 1.0
_EPHEMERAL = (49152, 65535)


class ProbeError(Exception):
    """A probe could not be started at all (e.g. the source netns is missing)."""


@dataclass(frozen=True)
class ProbeTarget:
    """A probe with names already resolved: source netns path/name and IPv4 destination.

    ``src_ip``, when set, is the source address (the socket is bound to it).
    """

    src_netns: str
    dst_ip: str
    port: int
    proto: Proto
    src_ip: str | None = None
    # The cgroup v2 the socket is created in: a lab node's, for its socket LB.
    cgroup: str | None = None


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
    kind, proto = {
        "TCP": (socket.SOCK_STREAM, 0),
        "UDP": (socket.SOCK_DGRAM, 0),
        "SCTP": (socket.SOCK_RAW, sctp.IPPROTO_SCTP),
    }[target.proto]
    try:
        if target.cgroup is not None:
            with cgroup.joined(Path(target.cgroup)):
                sock = netns.socket_in(target.src_netns, socket.AF_INET, kind, proto)
        else:
            sock = netns.socket_in(target.src_netns, socket.AF_INET, kind, proto)
    except OSError as exc:
        raise ProbeError(f"cannot open socket in netns {target.src_netns}: {exc}") from exc
    if target.src_ip is not None:
        try:
            sock.bind((target.src_ip, 0))
        except OSError as exc:
            sock.close()
            raise ProbeError(
                f"cannot bind {target.src_ip} in netns {target.src_netns}: {exc}"
            ) from exc
    return sock


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


async def _sctp_reply(
    sock: socket.socket, target: ProbeTarget, local_port: int, tag: int
) -> sctp.InitReply:
    """Wait for the INIT ACK or ABORT that answers our INIT; skip everything else."""
    loop = asyncio.get_running_loop()
    while True:
        ip = sctp.parse_ipv4(await loop.sock_recv(sock, _RAW_MAX))
        if ip is None or ip.proto != sctp.IPPROTO_SCTP or ip.src != target.dst_ip:
            continue
        try:
            packet = sctp.decode_packet(ip.payload)
        except sctp.SctpError:
            continue
        reply = sctp.match_init_reply(
            packet, local_port=local_port, remote_port=target.port, tag=tag
        )
        if reply is not None:
            return reply


async def _probe_sctp(sock: socket.socket, target: ProbeTarget) -> ProbeResult:
    loop = asyncio.get_running_loop()
    local_port = _EPHEMERAL[0] + secrets.randbelow(_EPHEMERAL[1] - _EPHEMERAL[0] + 1)
    tag = sctp.random_tag()
    init = sctp.make_init(local_port, target.port, tag, sctp.random_tag()).encode()
    # ICMP errors (protocol, host or net unreachable) then fail the next recv.
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    start = time.perf_counter()
    try:
        # On a raw socket connect() only fixes the peer: the kernel then
        # delivers only that peer's packets (and its ICMP errors) to us.
        sock.connect((target.dst_ip, 0))
        while True:
            await loop.sock_sendall(sock, init)
            try:
                async with asyncio.timeout(SCTP_RETRANSMIT):
                    reply = await _sctp_reply(sock, target, local_port, tag)
                break
            except TimeoutError:
                continue
    except OSError as exc:
        return _from_oserror(exc, start)
    rtt = _elapsed_ms(start)
    if reply.kind == "abort":
        return ProbeResult("refused", rtt, "ABORT")
    # The peer kept no state (it is all in the cookie), but middleboxes may have:
    # end the half-opened association as a client stack giving up would.
    with contextlib.suppress(OSError):
        sock.send(sctp.make_abort(local_port, target.port, reply.peer_tag).encode())
    return ProbeResult("reachable", rtt, "INIT ACK")


# The timeout is per probe and decides the outcome, not a cancel scope for the caller.
async def probe(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Probe one target; raise :class:`ProbeError` only if no socket could be made."""
    with _open(target) as sock:
        try:
            async with asyncio.timeout(timeout):
                if target.proto == "TCP":
                    return await _probe_tcp(sock, target)
                if target.proto == "SCTP":
                    return await _probe_sctp(sock, target)
                return await _probe_udp(sock, target)
        except TimeoutError:
            silence = {"TCP": "no answer", "UDP": "no echo", "SCTP": "no INIT ACK"}[target.proto]
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
