"""The built-in pod workload: HTTP-or-echo on TCP ports, echo on UDP ports, SCTP handshakes.

Run inside a pod's netns (the lab starts it with ``ip netns exec``)::

    python -m axoneme.lab.workload --namespace demo --pod web --node n1 \\
        --port 80/TCP --port 53/UDP --port 9000/SCTP

On a TCP connection whose first bytes are an HTTP/1.x request line it answers
JSON describing the pod and the request (with keep-alive); any other TCP
stream is echoed back until EOF. UDP datagrams are echoed to their sender.
It prints ``ready`` once every port is bound and exits 0 on SIGTERM/SIGINT.

The lab's kernel has no SCTP sockets, so SCTP ports are served over one raw
``IPPROTO_SCTP`` socket (:mod:`axoneme.kit.sctp`): an INIT to a served port
is answered with INIT ACK, an INIT to any other port with ABORT, as the
namespace's SCTP stack would (so run at most one SCTP workload per namespace).
Nothing else is answered: the raw socket sees every SCTP packet of the
namespace, including replies meant for probes running there.

HTTP parsing and response rendering are pure functions (sans-io); the asyncio
part below them only moves bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import secrets
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from axoneme.kit import sctp

__all__ = [
    "HTTP_METHODS",
    "HttpParseError",
    "HttpRequest",
    "Options",
    "PodIdentity",
    "PortSpec",
    "looks_like_http",
    "main",
    "parse_args",
    "parse_http_request",
    "parse_port",
    "render_error",
    "render_response",
    "sctp_answer",
    "serve",
]

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ")
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
# How long an undecided prefix (e.g. b"GE") may wait before we settle on echo.
SNIFF_TIMEOUT = 1.0
_READ_SIZE = 65536


# --- sans-io HTTP ---------------------------------------------------------------------


class HttpParseError(ValueError):
    """The bytes are not a request this server understands."""


@dataclass(frozen=True)
class HttpRequest:
    """A parsed request; ``consumed`` counts head plus body bytes taken from the buffer."""

    method: str
    path: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    consumed: int

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), if present."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 persists unless ``Connection: close``; 1.0 only on ``keep-alive``."""
        tokens = {t.strip().lower() for t in (self.header("Connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def looks_like_http(prefix: bytes) -> bool | None:
    """Whether a stream starting with ``prefix`` is HTTP; ``None`` if too short to tell."""
    if any(prefix.startswith(method) for method in HTTP_METHODS):
        return True
    if any(method.startswith(prefix) for method in HTTP_METHODS):
        return None
    return False


def parse_http_request(data: bytes) -> HttpRequest | None:
    """Parse one request from the start of ``data``; ``None`` means more bytes are needed.

    Supports bodies sized by ``Content-Length``; raises :class:`HttpParseError` on
    anything malformed or unsupported (chunked bodies, oversized heads).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD:
            raise HttpParseError(f"request head exceeds {MAX_HEAD} bytes")
        return None
    try:
        head = data[:end].decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes everything
        raise HttpParseError("undecodable request head") from exc
    request_line, *header_lines = head.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HttpParseError(f"bad request line {request_line!r}")
    method, path, version = parts
    if method.encode() + b" " not in HTTP_METHODS:
        raise HttpParseError(f"unsupported method {method!r}")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpParseError(f"unsupported version {version!r}")
    if not path or any(c.isspace() for c in path):
        raise HttpParseError(f"bad request target {path!r}")
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        name, colon, value = line.partition(":")
        # RFC 9112: no whitespace between field name and colon.
        if not colon or not name or name != name.strip() or " " in name:
            raise HttpParseError(f"bad header line {line!r}")
        headers.append((name, value.strip()))
    request = HttpRequest(method, path, version, tuple(headers), b"", end + 4)
    if request.header("Transfer-Encoding") is not None:
        raise HttpParseError("Transfer-Encoding is not supported")
    length_text = request.header("Content-Length") or "0"
    if not length_text.isascii() or not length_text.isdigit():
        raise HttpParseError(f"bad Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY:
        raise HttpParseError(f"body of {length} bytes exceeds {MAX_BODY}")
    total = end + 4 + length
    if len(data) < total:
        return None
    return HttpRequest(method, path, version, tuple(headers), data[end + 4 : total], total)


@dataclass(frozen=True)
class PodIdentity:
    """Who this workload claims to be in its replies."""

    namespace: str
    name: str
    node: str


def _render(status: str, body: bytes, *, keep_alive: bool, head_only: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if head_only else head + body


def render_response(pod: PodIdentity, request: HttpRequest, client: str) -> bytes:
    """The 200 reply for ``request`` from ``client`` (``ip:port``)."""
    headers: dict[str, str] = {}
    for name, value in request.headers:
        # Repeated headers combine as RFC 9110 allows.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    document = {
        "pod": f"{pod.namespace}/{pod.name}",
        "namespace": pod.namespace,
        "name": pod.name,
        "node": pod.node,
        "method": request.method,
        "path": request.path,
        "headers": headers,
        "client": client,
    }
    body = json.dumps(document).encode()
    return _render(
        "200 OK", body, keep_alive=request.keep_alive, head_only=request.method == "HEAD"
    )


def render_error(message: str) -> bytes:
    """A 400 reply that closes the connection."""
    body = json.dumps({"error": message}).encode()
    return _render("400 Bad Request", body, keep_alive=False, head_only=False)


# --- arguments ------------------------------------------------------------------------


@dataclass(frozen=True)
class PortSpec:
    """A port to serve, e.g. ``80/TCP``."""

    port: int
    proto: Literal["TCP", "UDP", "SCTP"]


_PROTOS: dict[str, Literal["TCP", "UDP", "SCTP"]] = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP"}


def parse_port(text: str) -> PortSpec:
    """Parse ``N/TCP``, ``N/UDP`` or ``N/SCTP`` (proto case-insensitive, N in 1..65535)."""
    number, slash, proto = text.partition("/")
    if not slash or proto.upper() not in _PROTOS:
        raise argparse.ArgumentTypeError(f"{text!r} is not N/TCP, N/UDP or N/SCTP")
    if not number.isascii() or not number.isdigit() or not 1 <= int(number) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: port must be in 1..65535")
    return PortSpec(int(number), _PROTOS[proto.upper()])


@dataclass(frozen=True)
class Options:
    """Validated command line."""

    pod: PodIdentity
    ports: tuple[PortSpec, ...]


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line; exits 2 with an argparse message on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m axoneme.lab.workload",
        description="Pod workload: HTTP-or-echo on TCP ports, echo on UDP ports, "
        "SCTP INIT answered over a raw socket.",
    )
    parser.add_argument("--namespace", required=True, help="pod namespace")
    parser.add_argument("--pod", required=True, help="pod name")
    parser.add_argument("--node", required=True, help="node the pod runs on")
    parser.add_argument(
        "--port",
        type=parse_port,
        action="append",
        default=[],
        help="N/TCP, N/UDP or N/SCTP (repeatable; none: the pod only idles)",
    )
    args = parser.parse_args(argv)
    ports = tuple(dict.fromkeys(args.port))  # drop duplicates, keep order
    return Options(PodIdentity(args.namespace, args.pod, args.node), ports)


# --- asyncio adapters -----------------------------------------------------------------


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


async def _sniff(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """Read until the stream's kind is known; return the bytes read and is-HTTP."""
    buffer = b""
    while (verdict := looks_like_http(buffer)) is None:
        try:
            async with asyncio.timeout(SNIFF_TIMEOUT):
                chunk = await reader.read(_READ_SIZE)
        except TimeoutError:
            if not buffer:
                continue  # nothing sent yet: a client may connect long before it speaks
            return buffer, False  # a client waiting on a short prefix wants its echo
        if not chunk:
            return buffer, False
        buffer += chunk
    return buffer, verdict


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes) -> None:
    data = first
    while data:
        writer.write(data)
        await writer.drain()
        data = await reader.read(_READ_SIZE)


async def _serve_http(
    pod: PodIdentity, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes
) -> None:
    buffer, client = first, _peer(writer)
    while True:
        try:
            request = parse_http_request(buffer)
        except HttpParseError as exc:
            writer.write(render_error(str(exc)))
            await writer.drain()
            return
        if request is None:
            chunk = await reader.read(_READ_SIZE)
            if not chunk:
                return
            buffer += chunk
            continue
        writer.write(render_response(pod, request, client))
        await writer.drain()
        if not request.keep_alive:
            return
        buffer = buffer[request.consumed :]


async def _handle_tcp(
    pod: PodIdentity, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        first, is_http = await _sniff(reader)
        if is_http:
            await _serve_http(pod, reader, writer, first)
        else:
            await _echo(reader, writer, first)
    except ConnectionError:
        pass  # the client went away; nothing to report to it
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


IP_PKTINFO = 8  # Linux value; typeshed lacks socket.IP_PKTINFO on 3.11
_IN_PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr


def sctp_answer(
    datagram: bytes, served: frozenset[int], secret: bytes
) -> tuple[str, str, bytes] | None:
    """The reply to what a raw SCTP socket received: (source, destination, SCTP bytes).

    ``None`` for anything the namespace's stack would not answer: non-SCTP,
    non-unicast destinations, bad checksums, and every chunk but a valid INIT.
    """
    ip = sctp.parse_ipv4(datagram)
    if ip is None or ip.proto != sctp.IPPROTO_SCTP:
        return None
    dst = ipaddress.IPv4Address(ip.dst)
    if dst.is_multicast or dst.is_unspecified or dst == ipaddress.IPv4Address("255.255.255.255"):
        return None
    try:
        packet = sctp.decode_packet(ip.payload)
    except sctp.SctpError:
        return None
    reply = sctp.respond(packet, peer_ip=ip.src, served=served, secret=secret)
    if reply is None:
        return None
    # Answer from the address the INIT was sent to, as a multi-homed stack would.
    return ip.dst, ip.src, reply.encode()


def _reply_source(ancillary: list[tuple[int, int, bytes]]) -> bytes:
    """The ``IP_PKTINFO`` to answer with: from the address the datagram was sent to.

    The kernel's ``ipi_spec_dst`` is that address for unicast, and a fitting
    local address for broadcast and multicast.
    """
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
            _, spec_dst, _ = _IN_PKTINFO.unpack_from(data)
            return _IN_PKTINFO.pack(0, spec_dst, bytes(4))
    return _IN_PKTINFO.pack(0, bytes(4), bytes(4))  # let routing choose


class _UdpEcho:
    """Echoes datagrams to their sender, from the address they were sent to.

    A socket bound to 0.0.0.0 would otherwise answer from whatever address the
    route back prefers: on a host with several addresses (the lab's world) the
    client's connected socket would then drop the echo.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self.sock.bind(("0.0.0.0", port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def _readable(self) -> None:
        for _ in range(256):  # bounded: a flood must not starve the other ports
            try:
                data, ancillary, _, peer = self.sock.recvmsg(_READ_SIZE, socket.CMSG_SPACE(12))
            except BlockingIOError:
                return
            except OSError:
                continue  # an error queued by an earlier reply; a UDP echo has no one to tell
            pktinfo = _reply_source(ancillary)
            with contextlib.suppress(OSError):  # unroutable or full: a lossy network
                self.sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, peer)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        self.sock.close()


class _SctpResponder:
    """Serves SCTP ports on the namespace's one raw ``IPPROTO_SCTP`` socket."""

    def __init__(self, ports: frozenset[int]) -> None:
        self.ports = ports
        self.secret = secrets.token_bytes(32)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP)
        self.sock.setblocking(False)

    def _readable(self) -> None:
        for _ in range(256):  # bounded: a flood must not starve TCP and UDP
            try:
                datagram = self.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                continue  # a queued error; the socket itself is fine
            answer = sctp_answer(datagram, self.ports, self.secret)
            if answer is None:
                continue
            src, dst, payload = answer
            pktinfo = _IN_PKTINFO.pack(0, socket.inet_aton(src), bytes(4))
            with contextlib.suppress(OSError):  # unroutable or full: a lossy network
                self.sock.sendmsg(
                    [payload], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, (dst, 0)
                )

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def serve(options: Options) -> None:
    """Bind every port, print ``ready``, and serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers: list[asyncio.Server] = []
    echoes: list[_UdpEcho] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle_tcp(options.pod, reader, writer)

    responder: _SctpResponder | None = None

    try:
        sctp_ports = frozenset(spec.port for spec in options.ports if spec.proto == "SCTP")
        if sctp_ports:
            responder = _SctpResponder(sctp_ports)
            responder.start(loop)
        for spec in options.ports:
            if spec.proto == "SCTP":
                continue
            if spec.proto == "TCP":
                # A deep backlog: probes open hundreds of connections at once.
                servers.append(
                    await asyncio.start_server(
                        handle, "0.0.0.0", spec.port, reuse_address=True, backlog=4096
                    )
                )
            else:
                echo = _UdpEcho(spec.port)
                echoes.append(echo)
                echo.start(loop)
        print("ready", flush=True)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for echo in echoes:
            echo.close(loop)
        if responder is not None:
            responder.close(loop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    options = parse_args(argv)
    try:
        asyncio.run(serve(options))
    except OSError as exc:
        print(f"workload: cannot bind: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
