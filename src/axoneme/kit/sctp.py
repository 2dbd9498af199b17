"""SCTP packets without an SCTP stack: CRC32c, the common header, INIT / INIT ACK / ABORT.

The lab's kernel has no SCTP module (``socket(AF_INET, SOCK_STREAM,
IPPROTO_SCTP)`` fails), so the workload and the probe speak the first step
of the four-way handshake themselves over raw sockets (RFC 4960):

- a client sends INIT (verification tag 0, its Initiate Tag);
- a listening endpoint answers INIT ACK, tagged with the INIT's Initiate Tag
  and carrying its own Initiate Tag and a State Cookie (it keeps no state);
- an endpoint with nothing on that port answers ABORT, tagged with the
  INIT's Initiate Tag and the T bit clear (section 8.4 and 5.1).

Everything here is pure (sans-io) and stdlib only: bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import struct
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

__all__ = [
    "ABORT_T_BIT",
    "IPPROTO_SCTP",
    "Chunk",
    "ChunkType",
    "CookieState",
    "IPv4Packet",
    "InitChunk",
    "InitReply",
    "Packet",
    "Param",
    "ParamType",
    "SctpError",
    "crc32c",
    "decode_packet",
    "make_abort",
    "make_init",
    "match_init_reply",
    "open_cookie",
    "parse_ipv4",
    "random_tag",
    "respond",
]

IPPROTO_SCTP = 132
ABORT_T_BIT = 0x01
DEFAULT_STREAMS = 10
DEFAULT_A_RWND = 106496
COOKIE_LIFETIME_MS = 60_000

_COMMON = struct.Struct("!HHII")  # source port, destination port, verification tag, checksum
_CHUNK = struct.Struct("!BBH")  # type, flags, length
_INIT = struct.Struct("!IIHHI")  # initiate tag, a_rwnd, OS, MIS, initial TSN
_PARAM = struct.Struct("!HH")  # type, length
_COOKIE = struct.Struct("!IIIIHH4sQ")  # tags, TSNs, ports, peer address, creation time (ms)
_COOKIE_MAC = 16
_IPV4 = struct.Struct("!BBHHHBBH4s4s")


class SctpError(ValueError):
    """Bytes that are not a well-formed SCTP packet, chunk or parameter."""


class ChunkType(IntEnum):
    DATA = 0
    INIT = 1
    INIT_ACK = 2
    SACK = 3
    HEARTBEAT = 4
    HEARTBEAT_ACK = 5
    ABORT = 6
    SHUTDOWN = 7
    SHUTDOWN_ACK = 8
    ERROR = 9
    COOKIE_ECHO = 10
    COOKIE_ACK = 11
    SHUTDOWN_COMPLETE = 14


class ParamType(IntEnum):
    IPV4_ADDRESS = 5
    STATE_COOKIE = 7
    SUPPORTED_ADDRESS_TYPES = 12


# --- CRC32c (Castagnoli), RFC 3309 / RFC 4960 appendix B -------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # reflected 0x1EDC6F41
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32c of ``data``; pass a previous result as ``crc`` to continue it."""
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _pad4(length: int) -> int:
    return -length % 4


# --- chunks and packets -------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One chunk: ``value`` excludes the 4-byte chunk header and the padding."""

    type: int
    flags: int = 0
    value: bytes = b""

    def encode(self) -> bytes:
        length = _CHUNK.size + len(self.value)
        if length > 0xFFFF:
            raise SctpError(f"chunk of {length} bytes is too long")
        return _CHUNK.pack(self.type, self.flags, length) + self.value + b"\0" * _pad4(length)


@dataclass(frozen=True)
class Packet:
    """An SCTP packet: common header fields and chunks (the checksum is computed)."""

    src_port: int
    dst_port: int
    vtag: int
    chunks: tuple[Chunk, ...]

    def encode(self) -> bytes:
        body = b"".join(chunk.encode() for chunk in self.chunks)
        head = _COMMON.pack(self.src_port, self.dst_port, self.vtag, 0)
        checksum = crc32c(body, crc32c(head))
        # The CRC goes on the wire least significant byte first (RFC 4960 appendix B).
        return head[:8] + struct.pack("<I", checksum) + body

    def first(self) -> Chunk | None:
        return self.chunks[0] if self.chunks else None


def decode_packet(data: bytes, *, verify_checksum: bool = True) -> Packet:
    """Parse an SCTP packet (no IP header); raise :class:`SctpError` on any defect."""
    if len(data) < _COMMON.size:
        raise SctpError(f"packet of {len(data)} bytes is shorter than the common header")
    src_port, dst_port, vtag, _ = _COMMON.unpack_from(data)
    if verify_checksum:
        (wire,) = struct.unpack_from("<I", data, 8)
        computed = crc32c(data[12:], crc32c(data[:8] + b"\0\0\0\0"))
        if wire != computed:
            raise SctpError(f"bad checksum {wire:#010x}, expected {computed:#010x}")
    chunks = []
    offset = _COMMON.size
    while offset < len(data):
        if len(data) - offset < _CHUNK.size:
            raise SctpError(f"truncated chunk header at offset {offset}")
        ctype, flags, length = _CHUNK.unpack_from(data, offset)
        if length < _CHUNK.size or offset + length > len(data):
            raise SctpError(f"chunk length {length} at offset {offset} is out of bounds")
        chunks.append(Chunk(ctype, flags, bytes(data[offset + _CHUNK.size : offset + length])))
        offset += length + _pad4(length)
    return Packet(src_port, dst_port, vtag, tuple(chunks))


@dataclass(frozen=True)
class Param:
    """A TLV parameter of INIT / INIT ACK; ``value`` excludes header and padding."""

    type: int
    value: bytes

    def encode(self) -> bytes:
        length = _PARAM.size + len(self.value)
        return _PARAM.pack(self.type, length) + self.value + b"\0" * _pad4(length)


def _decode_params(data: bytes) -> tuple[Param, ...]:
    params = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _PARAM.size:
            raise SctpError(f"truncated parameter header at offset {offset}")
        ptype, length = _PARAM.unpack_from(data, offset)
        if length < _PARAM.size or offset + length > len(data):
            raise SctpError(f"parameter length {length} at offset {offset} is out of bounds")
        params.append(Param(ptype, bytes(data[offset + _PARAM.size : offset + length])))
        offset += length + _pad4(length)
    return tuple(params)


@dataclass(frozen=True)
class InitChunk:
    """The body shared by INIT and INIT ACK (RFC 4960 3.3.2 and 3.3.3)."""

    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    params: tuple[Param, ...] = field(default=())

    def to_chunk(self, ctype: Literal[ChunkType.INIT, ChunkType.INIT_ACK]) -> Chunk:
        fixed = _INIT.pack(
            self.initiate_tag,
            self.a_rwnd,
            self.outbound_streams,
            self.inbound_streams,
            self.initial_tsn,
        )
        body = fixed + b"".join(p.encode() for p in self.params)
        # The last parameter's padding is not part of the chunk length (the chunk pads itself).
        if self.params:
            body = body[: len(body) - _pad4(_PARAM.size + len(self.params[-1].value))]
        return Chunk(int(ctype), 0, body)

    @classmethod
    def from_chunk(cls, chunk: Chunk) -> InitChunk:
        if chunk.type not in (ChunkType.INIT, ChunkType.INIT_ACK):
            raise SctpError(f"chunk type {chunk.type} is not INIT or INIT ACK")
        if len(chunk.value) < _INIT.size:
            raise SctpError(f"INIT body of {len(chunk.value)} bytes is too short")
        tag, a_rwnd, outbound, inbound, tsn = _INIT.unpack_from(chunk.value)
        params = _decode_params(chunk.value[_INIT.size :])
        return cls(tag, a_rwnd, outbound, inbound, tsn, params)

    def param(self, ptype: int) -> bytes | None:
        return next((p.value for p in self.params if p.type == ptype), None)

    def problem(self) -> str | None:
        """Why the chunk is invalid (RFC 4960 3.3.2: tag and stream counts nonzero)."""
        if self.initiate_tag == 0:
            return "initiate tag is 0"
        if self.outbound_streams == 0 or self.inbound_streams == 0:
            return "a stream count is 0"
        return None


def random_tag() -> int:
    """A random nonzero 32-bit tag (also good as an initial TSN)."""
    while True:
        tag = secrets.randbits(32)
        if tag:
            return tag


def make_init(
    src_port: int,
    dst_port: int,
    initiate_tag: int,
    initial_tsn: int,
    *,
    streams: int = DEFAULT_STREAMS,
    a_rwnd: int = DEFAULT_A_RWND,
) -> Packet:
    """A client's INIT (verification tag 0), announcing IPv4-only addressing."""
    init = InitChunk(
        initiate_tag,
        a_rwnd,
        streams,
        streams,
        initial_tsn,
        (Param(ParamType.SUPPORTED_ADDRESS_TYPES, struct.pack("!H", 5)),),
    )
    return Packet(src_port, dst_port, 0, (init.to_chunk(ChunkType.INIT),))


def make_abort(src_port: int, dst_port: int, vtag: int, *, reflected: bool = False) -> Packet:
    """An ABORT without error causes; ``reflected`` sets the T bit."""
    flags = ABORT_T_BIT if reflected else 0
    return Packet(src_port, dst_port, vtag, (Chunk(ChunkType.ABORT, flags),))


# --- the State Cookie ---------------------------------------------------------------------


@dataclass(frozen=True)
class CookieState:
    """What an INIT ACK's State Cookie remembers, so the responder itself needs no state."""

    local_tag: int
    peer_tag: int
    local_tsn: int
    peer_tsn: int
    local_port: int
    peer_port: int
    peer_ip: str
    created_ms: int


def _seal(state: CookieState, secret: bytes) -> bytes:
    body = _COOKIE.pack(
        state.local_tag,
        state.peer_tag,
        state.local_tsn,
        state.peer_tsn,
        state.local_port,
        state.peer_port,
        ipaddress.IPv4Address(state.peer_ip).packed,
        state.created_ms,
    )
    return body + hmac.digest(secret, body, hashlib.sha256)[:_COOKIE_MAC]


def open_cookie(cookie: bytes, secret: bytes, *, now_ms: int | None = None) -> CookieState | None:
    """The state sealed in ``cookie``, or ``None`` if forged, damaged or expired."""
    if len(cookie) != _COOKIE.size + _COOKIE_MAC:
        return None
    body, mac = cookie[: _COOKIE.size], cookie[_COOKIE.size :]
    if not hmac.compare_digest(mac, hmac.digest(secret, body, hashlib.sha256)[:_COOKIE_MAC]):
        return None
    local_tag, peer_tag, local_tsn, peer_tsn, local_port, peer_port, peer, created = _COOKIE.unpack(
        body
    )
    state = CookieState(
        local_tag,
        peer_tag,
        local_tsn,
        peer_tsn,
        local_port,
        peer_port,
        str(ipaddress.IPv4Address(peer)),
        created,
    )
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if not 0 <= now - state.created_ms <= COOKIE_LIFETIME_MS:
        return None
    return state


# --- the responder (a listening endpoint's first step) -------------------------------------


def respond(
    packet: Packet,
    *,
    peer_ip: str,
    served: Container[int],
    secret: bytes,
    new_tag: Callable[[], int] = random_tag,
    now_ms: int | None = None,
) -> Packet | None:
    """What a stack with listeners on ``served`` ports answers to ``packet``, if anything.

    Only INIT is answered: INIT ACK when the port is served, ABORT when it is
    not (RFC 4960 8.4 rule 3 applied to INIT, tagged per 5.1). Anything else
    (other chunks, a nonzero verification tag on INIT, INIT bundled with other
    chunks, malformed INIT) is silently discarded, so that a raw socket that
    sees every SCTP packet of its namespace never disturbs other endpoints.
    """
    if len(packet.chunks) != 1 or packet.chunks[0].type != ChunkType.INIT:
        return None
    if packet.vtag != 0 or packet.src_port == 0 or packet.dst_port == 0:
        return None
    try:
        init = InitChunk.from_chunk(packet.chunks[0])
    except SctpError:
        return None
    if init.problem() is not None:
        return None
    if packet.dst_port not in served:
        return make_abort(packet.dst_port, packet.src_port, init.initiate_tag)
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    state = CookieState(
        local_tag=new_tag(),
        peer_tag=init.initiate_tag,
        local_tsn=new_tag(),
        peer_tsn=init.initial_tsn,
        local_port=packet.dst_port,
        peer_port=packet.src_port,
        peer_ip=peer_ip,
        created_ms=now,
    )
    ack = InitChunk(
        state.local_tag,
        DEFAULT_A_RWND,
        min(DEFAULT_STREAMS, init.inbound_streams),
        DEFAULT_STREAMS,
        state.local_tsn,
        (Param(ParamType.STATE_COOKIE, _seal(state, secret)),),
    )
    return Packet(
        packet.dst_port, packet.src_port, init.initiate_tag, (ack.to_chunk(ChunkType.INIT_ACK),)
    )


@dataclass(frozen=True)
class InitReply:
    """The answer to our INIT: ``peer_tag`` is the INIT ACK's Initiate Tag (0 for ABORT)."""

    kind: Literal["init-ack", "abort"]
    peer_tag: int


def match_init_reply(
    packet: Packet, *, local_port: int, remote_port: int, tag: int
) -> InitReply | None:
    """Whether ``packet`` answers the INIT we sent from ``local_port`` with ``tag``.

    Ports must be the reverse of ours and the verification tag must be our
    Initiate Tag; an ABORT must have the T bit clear (RFC 4960 8.5.1 (B): in
    COOKIE-WAIT we know no peer tag that a reflected tag could match).
    """
    if (packet.src_port, packet.dst_port, packet.vtag) != (remote_port, local_port, tag):
        return None
    chunk = packet.first()
    if chunk is None:
        return None
    if chunk.type == ChunkType.INIT_ACK:
        try:
            ack = InitChunk.from_chunk(chunk)
        except SctpError:
            return None
        if ack.problem() is not None or ack.param(ParamType.STATE_COOKIE) is None:
            return None
        return InitReply("init-ack", ack.initiate_tag)
    if chunk.type == ChunkType.ABORT and not chunk.flags & ABORT_T_BIT:
        return InitReply("abort", 0)
    return None


# --- IPv4, as a raw socket delivers it ------------------------------------------------------


@dataclass(frozen=True)
class IPv4Packet:
    src: str
    dst: str
    proto: int
    payload: bytes


def parse_ipv4(data: bytes) -> IPv4Packet | None:
    """Split what an ``AF_INET`` raw socket receives into addresses and payload."""
    if len(data) < _IPV4.size:
        return None
    ver_ihl, _, total, _, frag, _, proto, _, src, dst = _IPV4.unpack_from(data)
    header = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or header < _IPV4.size or header > len(data):
        return None
    if frag & 0x3FFF:  # a fragment (raw sockets get reassembled packets; be safe)
        return None
    end = min(total, len(data)) if total >= header else len(data)
    return IPv4Packet(
        str(ipaddress.IPv4Address(src)),
        str(ipaddress.IPv4Address(dst)),
        proto,
        bytes(data[header:end]),
    )
