"""ICMP echo packets: building, checksums, parsing replies out of raw IPv4 datagrams."""

from __future__ import annotations

import struct

from axoneme.health.icmp import EchoReply, checksum, echo_request, parse_echo_reply


def _ip_header(payload_len: int) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0, 64, 1, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip


def test_request_checksum_verifies() -> None:
    packet = echo_request(0x1234, 7)
    assert packet[0] == 8 and checksum(packet) == 0


def test_reply_parsed_from_a_raw_datagram() -> None:
    request = echo_request(0x1234, 7)
    reply = bytes([0]) + request[1:2] + b"\0\0" + request[4:]
    reply = reply[:2] + struct.pack("!H", checksum(reply)) + reply[4:]
    assert parse_echo_reply(_ip_header(len(reply)) + reply) == EchoReply(0x1234, 7)


def test_requests_corrupt_and_short_datagrams_are_not_replies() -> None:
    request = echo_request(1, 1)
    assert parse_echo_reply(_ip_header(len(request)) + request) is None  # type 8
    reply = bytes([0]) + request[1:]
    assert parse_echo_reply(_ip_header(len(reply)) + reply) is None  # bad checksum
    assert parse_echo_reply(b"\x45" + bytes(10)) is None
