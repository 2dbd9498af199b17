"""SCTP packets without an SCTP stack: CRC32c, INIT / INIT ACK / ABORT, tag rules (pure)."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest

from axoneme.kit import sctp
from axoneme.kit.sctp import Chunk, ChunkType, InitChunk, Packet, Param, ParamType
from axoneme.lab.workload import sctp_answer

SECRET = b"k" * 32

# --- CRC32c -------------------------------------------------------------------------------


def _crc32c_bitwise(data: bytes) -> int:
    """The definition, one bit at a time (RFC 3309: polynomial 0x1EDC6F41, reflected)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        # The CRC32c check value (the "123456789" convention of every CRC catalogue).
        (b"123456789", 0xE3069283),
        # RFC 3720 B.4, the vectors cited for CRC32c by RFC 3309 and RFC 4960 appendix B.
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (b"", 0),
    ],
)
def test_crc32c_vectors(data: bytes, crc: int) -> None:
    assert sctp.crc32c(data) == crc
    assert _crc32c_bitwise(data) == crc


def test_crc32c_table_matches_definition_and_continues() -> None:
    rng = random.Random(4960)
    for size in (1, 3, 4, 17, 64, 1500):
        data = rng.randbytes(size)
        assert sctp.crc32c(data) == _crc32c_bitwise(data)
        cut = size // 3
        assert sctp.crc32c(data[cut:], sctp.crc32c(data[:cut])) == sctp.crc32c(data)


# --- packets captured from a real stack (Wireshark sample capture, as gopacket tests use) ---

CAPTURED_INIT = bytes.fromhex(
    "8e3c8e3c000000001e66827e01000014"  # ports 36412, vtag 0, checksum, INIT length 20
    "e153413d0000bb800003000ae153413d"
)
CAPTURED_COOKIE_ACK = bytes.fromhex("8e3c8e3ce153413d240575440b000004")


def _captured_init_ack() -> bytes:
    """A 464-byte INIT ACK with a 428-byte State Cookie, rebuilt from its hex dump."""
    data = bytearray(0x1D0)
    for offset, text in (
        (0x00, "8e3c8e3ce153413d48acdf1b020001c4"),
        (0x10, "03fe3c180000271000020002 03fe3c18"),
        (0x20, "000701b03d4153e180bb000002000000"),
        (0x30, "3d4153e1000000003c8e000001000000"),
        (0x40, "04000000190035 0a"),
        (0xEC, "183cfe03"),
        (0xF0, "10270000020000 00183cfe033c8e0000"),
        (0x100, "0100000004000000 70002b0a"),
        (0x1C8, "40b13754b0c83754"),
    ):
        chunk = bytes.fromhex(text.replace(" ", ""))
        data[offset : offset + len(chunk)] = chunk
    return bytes(data)


def test_captured_init_decodes_and_reencodes_bit_for_bit() -> None:
    assert len(CAPTURED_INIT) == 32
    packet = sctp.decode_packet(CAPTURED_INIT)
    assert (packet.src_port, packet.dst_port, packet.vtag) == (36412, 36412, 0)
    init = InitChunk.from_chunk(packet.chunks[0])
    assert init == InitChunk(0xE153413D, 48000, 3, 10, 3780329789)
    assert packet.encode() == CAPTURED_INIT  # same checksum bytes: 1e 66 82 7e


def test_captured_init_ack_with_cookie_round_trips() -> None:
    wire = _captured_init_ack()
    packet = sctp.decode_packet(wire)
    assert packet.vtag == 0xE153413D  # the INIT's Initiate Tag
    ack = InitChunk.from_chunk(packet.chunks[0])
    assert (ack.initiate_tag, ack.a_rwnd, ack.outbound_streams, ack.inbound_streams) == (
        0x03FE3C18,
        10000,
        2,
        2,
    )
    cookie = ack.param(ParamType.STATE_COOKIE)
    assert cookie is not None and len(cookie) == 428
    assert packet.encode() == wire  # checksum 48 ac df 1b


def test_captured_cookie_ack_round_trips() -> None:
    packet = sctp.decode_packet(CAPTURED_COOKIE_ACK)
    assert packet.chunks == (Chunk(ChunkType.COOKIE_ACK),)
    assert packet.encode() == CAPTURED_COOKIE_ACK


def test_bad_checksum_and_malformed_packets_are_rejected() -> None:
    damaged = bytearray(CAPTURED_INIT)
    damaged[-1] ^= 1
    with pytest.raises(sctp.SctpError, match="bad checksum"):
        sctp.decode_packet(bytes(damaged))
    assert sctp.decode_packet(bytes(damaged), verify_checksum=False).vtag == 0
    with pytest.raises(sctp.SctpError, match="shorter than the common header"):
        sctp.decode_packet(b"\0" * 11)
    bad_length = bytearray(Packet(1, 2, 3, (Chunk(ChunkType.ABORT),)).encode())
    bad_length[14:16] = struct.pack("!H", 64)  # chunk claims more than the packet holds
    with pytest.raises(sctp.SctpError, match="out of bounds"):
        sctp.decode_packet(bytes(bad_length), verify_checksum=False)
    with pytest.raises(sctp.SctpError, match="too short"):
        InitChunk.from_chunk(Chunk(ChunkType.INIT, 0, b"\0" * 8))


# --- INIT / INIT ACK / ABORT --------------------------------------------------------------


def test_init_round_trip_and_padding() -> None:
    packet = sctp.make_init(50000, 9000, initiate_tag=0xDEADBEEF, initial_tsn=7)
    wire = packet.encode()
    assert len(wire) % 4 == 0
    # Chunk length covers the last parameter without its padding (RFC 9260 3.2).
    assert struct.unpack_from("!H", wire, 14)[0] == 4 + 16 + 6
    decoded = sctp.decode_packet(wire)
    assert decoded == packet
    init = InitChunk.from_chunk(decoded.chunks[0])
    assert init.initiate_tag == 0xDEADBEEF and init.initial_tsn == 7
    assert init.param(ParamType.SUPPORTED_ADDRESS_TYPES) == struct.pack("!H", 5)
    assert decoded.vtag == 0  # INIT always carries verification tag 0


def test_params_with_odd_lengths_round_trip() -> None:
    init = InitChunk(
        1, 2, 3, 4, 5, (Param(0x8008, b"abc"), Param(ParamType.STATE_COOKIE, b"xyzzy"))
    )
    packet = Packet(1, 2, 0, (init.to_chunk(ChunkType.INIT_ACK), Chunk(ChunkType.ABORT, 1)))
    decoded = sctp.decode_packet(packet.encode())
    assert decoded == packet
    assert InitChunk.from_chunk(decoded.chunks[0]) == init


def _respond(packet: Packet, served: frozenset[int] = frozenset({9000})) -> Packet | None:
    tags = iter([0x11111111, 0x22222222])
    return sctp.respond(
        packet,
        peer_ip="10.0.0.1",
        served=served,
        secret=SECRET,
        new_tag=lambda: next(tags),
        now_ms=1_000_000,
    )


def test_init_to_served_port_gets_init_ack_tagged_per_rfc4960() -> None:
    init = sctp.make_init(50000, 9000, initiate_tag=0xA1B2C3D4, initial_tsn=99)
    reply = _respond(sctp.decode_packet(init.encode()))
    assert reply is not None
    # Ports reversed; verification tag = the INIT's Initiate Tag.
    assert (reply.src_port, reply.dst_port, reply.vtag) == (9000, 50000, 0xA1B2C3D4)
    decoded = sctp.decode_packet(reply.encode())
    assert decoded == reply
    ack = InitChunk.from_chunk(decoded.chunks[0])
    assert decoded.chunks[0].type == ChunkType.INIT_ACK
    assert ack.initiate_tag == 0x11111111 and ack.initial_tsn == 0x22222222
    assert ack.problem() is None and ack.outbound_streams <= 10
    cookie = ack.param(ParamType.STATE_COOKIE)
    assert cookie is not None
    state = sctp.open_cookie(cookie, SECRET, now_ms=1_000_500)
    assert state == sctp.CookieState(
        0x11111111, 0xA1B2C3D4, 0x22222222, 99, 9000, 50000, "10.0.0.1", 1_000_000
    )
    # The cookie is sealed: another secret, a flipped bit or old age opens nothing.
    assert sctp.open_cookie(cookie, b"other", now_ms=1_000_500) is None
    assert sctp.open_cookie(cookie[:-1] + bytes([cookie[-1] ^ 1]), SECRET) is None
    assert sctp.open_cookie(cookie, SECRET, now_ms=1_000_000 + 3_600_000) is None
    # And the client recognises it as the answer to its INIT.
    match = sctp.match_init_reply(decoded, local_port=50000, remote_port=9000, tag=0xA1B2C3D4)
    assert match == sctp.InitReply("init-ack", 0x11111111)


def test_init_to_closed_port_gets_abort_without_t_bit() -> None:
    init = sctp.make_init(50000, 9001, initiate_tag=0x01020304, initial_tsn=1)
    reply = _respond(init)
    assert reply == Packet(9001, 50000, 0x01020304, (Chunk(ChunkType.ABORT, 0),))
    decoded = sctp.decode_packet(reply.encode())
    match = sctp.match_init_reply(decoded, local_port=50000, remote_port=9001, tag=0x01020304)
    assert match == sctp.InitReply("abort", 0)


@pytest.mark.parametrize(
    "packet",
    [
        # INIT with a nonzero verification tag (RFC 4960 8.5.1: discard).
        Packet(50000, 9000, 5, sctp.make_init(50000, 9000, 1, 1).chunks),
        # INIT bundled with another chunk (6.10: INIT must be alone).
        Packet(50000, 9000, 0, (*sctp.make_init(50000, 9000, 1, 1).chunks, Chunk(0))),
        # Initiate Tag 0 or no streams: invalid INIT.
        Packet(50000, 9000, 0, (InitChunk(0, 1, 1, 1, 1).to_chunk(ChunkType.INIT),)),
        Packet(50000, 9000, 0, (InitChunk(1, 1, 0, 1, 1).to_chunk(ChunkType.INIT),)),
        # Truncated INIT body.
        Packet(50000, 9000, 0, (Chunk(ChunkType.INIT, 0, b"\1\2\3"),)),
        # Port 0.
        Packet(0, 9000, 0, sctp.make_init(0, 9000, 1, 1).chunks),
        # Replies, data, aborts: never answered, so a raw socket disturbs nobody.
        Packet(9000, 50000, 7, (InitChunk(9, 1, 1, 1, 1).to_chunk(ChunkType.INIT_ACK),)),
        sctp.make_abort(50000, 9000, 7),
        Packet(50000, 9000, 7, (Chunk(ChunkType.COOKIE_ECHO, 0, b"cookie"),)),
        Packet(50000, 9000, 7, (Chunk(ChunkType.DATA, 3, b"\0" * 16),)),
        Packet(50000, 9000, 7, ()),
    ],
)
def test_only_valid_init_is_answered(packet: Packet) -> None:
    assert _respond(packet) is None


def test_match_init_reply_checks_ports_tag_and_t_bit() -> None:
    ack = InitChunk(0x99, 1000, 1, 1, 5, (Param(ParamType.STATE_COOKIE, b"c"),))
    good = Packet(9000, 50000, 0xAB, (ack.to_chunk(ChunkType.INIT_ACK),))

    def match(packet: Packet) -> sctp.InitReply | None:
        return sctp.match_init_reply(packet, local_port=50000, remote_port=9000, tag=0xAB)

    assert match(good) == sctp.InitReply("init-ack", 0x99)
    assert match(Packet(9000, 50000, 0xAC, good.chunks)) is None  # another probe's tag
    assert match(Packet(9001, 50000, 0xAB, good.chunks)) is None  # another peer port
    assert match(Packet(9000, 50001, 0xAB, good.chunks)) is None  # another local port
    no_cookie = InitChunk(0x99, 1000, 1, 1, 5).to_chunk(ChunkType.INIT_ACK)
    assert match(Packet(9000, 50000, 0xAB, (no_cookie,))) is None  # cookie is mandatory
    zero_tag = InitChunk(0, 1000, 1, 1, 5, ack.params).to_chunk(ChunkType.INIT_ACK)
    assert match(Packet(9000, 50000, 0xAB, (zero_tag,))) is None
    assert match(sctp.make_abort(9000, 50000, 0xAB)) == sctp.InitReply("abort", 0)
    assert match(sctp.make_abort(9000, 50000, 0xAB, reflected=True)) is None  # T bit set
    assert match(Packet(9000, 50000, 0xAB, (Chunk(ChunkType.COOKIE_ACK),))) is None
    assert match(Packet(9000, 50000, 0xAB, ())) is None


def test_random_tags_are_nonzero_and_vary() -> None:
    tags = {sctp.random_tag() for _ in range(200)}
    assert 0 not in tags and len(tags) > 190
    assert all(0 < tag < 2**32 for tag in tags)


# --- IPv4 framing and the workload's raw-socket answer --------------------------------------


def _ipv4(src: str, dst: str, payload: bytes, proto: int = sctp.IPPROTO_SCTP) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + payload


def test_parse_ipv4() -> None:
    ip = sctp.parse_ipv4(_ipv4("10.0.0.1", "10.0.0.2", b"abcd") + b"trailer")
    assert ip == sctp.IPv4Packet("10.0.0.1", "10.0.0.2", sctp.IPPROTO_SCTP, b"abcd")
    assert sctp.parse_ipv4(b"\x45" + b"\0" * 10) is None  # short
    assert sctp.parse_ipv4(b"\x65" + b"\0" * 39) is None  # not IPv4
    fragment = bytearray(_ipv4("10.0.0.1", "10.0.0.2", b"abcd"))
    fragment[6:8] = struct.pack("!H", 0x2000)  # more fragments
    assert sctp.parse_ipv4(bytes(fragment)) is None


def test_workload_answers_from_the_address_the_init_was_sent_to() -> None:
    init = sctp.make_init(50000, 80, initiate_tag=77, initial_tsn=1).encode()
    answer = sctp_answer(_ipv4("10.42.1.5", "198.51.100.10", init), frozenset({80}), SECRET)
    assert answer is not None
    src, dst, payload = answer
    assert (src, dst) == ("198.51.100.10", "10.42.1.5")
    reply = sctp.decode_packet(payload)
    assert reply.vtag == 77 and reply.chunks[0].type == ChunkType.INIT_ACK
    refused = sctp_answer(_ipv4("10.42.1.5", "198.51.100.10", init), frozenset({81}), SECRET)
    assert refused is not None and sctp.decode_packet(refused[2]).chunks[0].type == ChunkType.ABORT


@pytest.mark.parametrize(
    "datagram",
    [
        _ipv4("10.0.0.1", "10.0.0.2", sctp.make_init(5, 80, 1, 1).encode(), proto=17),  # UDP
        _ipv4("10.0.0.1", "224.0.0.5", sctp.make_init(5, 80, 1, 1).encode()),  # multicast
        _ipv4("10.0.0.1", "255.255.255.255", sctp.make_init(5, 80, 1, 1).encode()),
        _ipv4("10.0.0.1", "10.0.0.2", sctp.make_init(5, 80, 1, 1).encode()[:-1] + b"\1"),
        _ipv4("10.0.0.1", "10.0.0.2", b"junk"),
        b"",
    ],
)
def test_workload_ignores_what_a_stack_would_not_answer(datagram: bytes) -> None:
    assert sctp_answer(datagram, frozenset({80}), SECRET) is None
