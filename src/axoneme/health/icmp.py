"""ICMP echo over a raw socket: pure packet building and parsing, and an async pinger.

One raw socket serves every concurrent probe: replies are matched to their
request by (source address, identifier, sequence), and a reply that arrives
after its probe timed out is ignored (it was counted as lost).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from dataclasses import dataclass

__all__ = ["EchoReply", "Pinger", "checksum", "echo_request", "parse_echo_reply"]

ECHO_REPLY = 0
ECHO_REQUEST = 8
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS); Python 3.11 does not name it.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("=qq")
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = b"axoneme-health") -> bytes:
    header = _HEADER.pack(ECHO_REQUEST, 0, 0, ident, seq)
    return _HEADER.pack(ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload


@dataclass(frozen=True)
class EchoReply:
    ident: int
    seq: int


def parse_echo_reply(datagram: bytes) -> EchoReply | None:
    """An echo reply from a raw IPv4 socket's datagram (IP header included), else None."""
    if len(datagram) < 20:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    icmp = datagram[ihl:]
    if len(icmp) < _HEADER.size:
        return None
    kind, code, _, ident, seq = _HEADER.unpack_from(icmp)
    if kind != ECHO_REPLY or code != 0 or checksum(icmp) != 0:
        return None
    return EchoReply(ident, seq)


class Pinger:
    """Concurrent echo probes from the namespace the socket was created in (needs root)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self._sock.setblocking(False)
        # The kernel stamps each reply on arrival: RTTs exclude our event loop's delays.
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._ident = os.getpid() & 0xFFFF
        self._seq = 0
        self._waiting: dict[tuple[str, int], tuple[int, asyncio.Future[float]]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def ping(self, ip: str, timeout: float) -> float | None:
        """Round-trip time in seconds, or None if no reply came within ``timeout``."""
        self._seq = (self._seq + 1) & 0xFFFF
        key = (ip, self._seq)
        future: asyncio.Future[float] = self._loop.create_future()
        self._waiting[key] = (time.time_ns(), future)  # CLOCK_REALTIME, as the stamps
        try:
            self._sock.sendto(echo_request(self._ident, self._seq), (ip, 0))
            return await asyncio.wait_for(future, timeout)
        except (TimeoutError, OSError):
            return None  # no route, unreachable or no answer: all count as loss
        finally:
            self._waiting.pop(key, None)

    def _on_readable(self) -> None:
        while True:
            try:
                data, ancillary, _, (source, _) = self._sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            arrived = time.time_ns()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanos = _TIMESPEC.unpack_from(value)
                    arrived = seconds * 1_000_000_000 + nanos
            reply = parse_echo_reply(data)
            if reply is None or reply.ident != self._ident:
                continue
            waiting = self._waiting.get((source, reply.seq))
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result(max(0, arrived - waiting[0]) / 1e9)
