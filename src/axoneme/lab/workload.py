"""The built-in pod workload: HTTP-or-echo on TCP ports, echo on UDP ports.

Run inside a pod's netns (the lab starts it with ``ip netns exec``)::

    python -m axoneme.lab.workload --namespace demo --pod web --node n1 \\
        --port 80/TCP --port 53/UDP

On a TCP connection whose first bytes are an HTTP/1.x request line it answers
JSON describing the pod and the request (with keep-alive); any other TCP
stream is echoed back until EOF. UDP datagrams are echoed to their sender.
It prints ``ready`` once every port is bound and exits 0 on SIGTERM/SIGINT.

HTTP parsing and response rendering are pure functions (sans-io); the asyncio
part below them only moves bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

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
    proto: Literal["TCP", "UDP"]


def parse_port(text: str) -> PortSpec:
    """Parse ``N/TCP`` or ``N/UDP`` (proto case-insensitive, N in 1..65535)."""
    number, slash, proto = text.partition("/")
    if not slash or proto.upper() not in ("TCP", "UDP"):
        raise argparse.ArgumentTypeError(f"{text!r} is not N/TCP or N/UDP")
    if not number.isascii() or not number.isdigit() or not 1 <= int(number) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: port must be in 1..65535")
    return PortSpec(int(number), "TCP" if proto.upper() == "TCP" else "UDP")


@dataclass(frozen=True)
class Options:
    """Validated command line."""

    pod: PodIdentity
    ports: tuple[PortSpec, ...]


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line; exits 2 with an argparse message on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m axoneme.lab.workload",
        description="Pod workload: HTTP-or-echo on TCP ports, echo on UDP ports.",
    )
    parser.add_argument("--namespace", required=True, help="pod namespace")
    parser.add_argument("--pod", required=True, help="pod name")
    parser.add_argument("--node", required=True, help="node the pod runs on")
    parser.add_argument(
        "--port",
        type=parse_port,
        action="append",
        default=[],
        help="N/TCP or N/UDP (repeatable; none: the pod only idles)",
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


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors about earlier replies; a UDP echo has no one to tell


async def serve(options: Options) -> None:
    """Bind every port, print ``ready``, and serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers: list[asyncio.Server] = []
    transports: list[asyncio.BaseTransport] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle_tcp(options.pod, reader, writer)

    try:
        for spec in options.ports:
            if spec.proto == "TCP":
                # A deep backlog: probes open hundreds of connections at once.
                servers.append(
                    await asyncio.start_server(
                        handle, "0.0.0.0", spec.port, reuse_address=True, backlog=4096
                    )
                )
            else:
                endpoint, _ = await loop.create_datagram_endpoint(
                    _UdpEcho, local_addr=("0.0.0.0", spec.port)
                )
                transports.append(endpoint)
        print("ready", flush=True)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for transport in transports:
            transport.close()


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
