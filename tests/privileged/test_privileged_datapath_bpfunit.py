"""BPF unit tests (``bpf/tests/*.c``) run through BPF_PROG_TEST_RUN, one case per sub-test.

- ``policy_test.c``: one program per case of the policy decision; each returns
  0 or the line number of the failed check.
- ``parse_test.c``: ``test_parse`` parses the packet it is given and reports
  the result in ``skb->cb[]``, which the kernel copies back into ctx_out.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from axoneme.datapath.linux import bpfsys, libbpf
from axoneme.datapath.linux.loader import Datapath, ensure_bpffs
from privileged.test_privileged_datapath_progrun import (
    A_IP,
    B_IP,
    ICMP,
    SCTP,
    SYN,
    TCP,
    UDP,
    frame,
    icmp,
    ipv4,
    require_datapath,
    sctp,
    skb_ctx,
    tcp,
    udp,
)

pytestmark = pytest.mark.privileged

BPF = Path(__file__).resolve().parents[2] / "bpf"
PASS = 1  # PARSE_PASS
FRAGMENT = 2  # PARSE_FRAGMENT
DROP_INVALID = -134


def _programs(source: str) -> list[str]:
    text = (BPF / "tests" / source).read_text()
    return re.findall(r'SEC\("tc"\)\s*int\s+(\w+)\(', text)


@pytest.fixture(scope="module")
def policy_object() -> Iterator[libbpf.BpfObject]:
    require_datapath()
    pin_dir = Path(f"/sys/fs/bpf/axt-bpfunit-{uuid.uuid4().hex[:8]}")
    ensure_bpffs(pin_dir)
    pin_dir.mkdir()
    try:
        with libbpf.BpfObject(BPF / "build/tests/policy_test.o", pin_root=pin_dir) as obj:
            obj.load()
            yield obj
    finally:
        Datapath.remove(pin_dir)


@pytest.fixture(scope="module")
def parse_object() -> Iterator[libbpf.BpfObject]:
    require_datapath()
    with libbpf.BpfObject(BPF / "build/tests/parse_test.o") as obj:
        obj.load()
        yield obj


def test_every_policy_case_is_collected(policy_object: libbpf.BpfObject) -> None:
    assert sorted(policy_object.program_names()) == sorted(_programs("policy_test.c"))


@pytest.mark.parametrize("case", _programs("policy_test.c"))
def test_policy(policy_object: libbpf.BpfObject, case: str) -> None:
    run = bpfsys.prog_test_run(policy_object.program_fd(case), frame(bytes(20)))
    assert run.retval == 0, f"{case}: check failed at bpf/tests/policy_test.c:{run.retval}"


def parse(obj: libbpf.BpfObject, packet: bytes) -> tuple[int, str, str, int, int, int, int]:
    run = bpfsys.prog_test_run(obj.program_fd("test_parse"), packet, ctx=skb_ctx(0))
    ret, saddr, daddr, ports, proto = struct.unpack_from("=iIIII", run.ctx, 48)  # cb[0..4]
    sport, dport = (ports & 0xFFFF).to_bytes(2, "little"), (ports >> 16).to_bytes(2, "little")
    return (
        ret,
        ".".join(str(b) for b in saddr.to_bytes(4, "little")),
        ".".join(str(b) for b in daddr.to_bytes(4, "little")),
        int.from_bytes(sport, "big"),
        int.from_bytes(dport, "big"),
        proto & 0xFF,
        proto >> 8,
    )


def _ihl15_udp() -> bytes:
    """An IPv4 header claiming 60 bytes of header in a 28-byte packet.

    (A packet shorter than an IPv4 header cannot be tested: BPF_PROG_TEST_RUN
    itself refuses it with EINVAL.)"""
    packet = bytearray(udp(A_IP, B_IP, 1, 2, b""))
    packet[14] = 0x4F
    return bytes(packet)


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (tcp(A_IP, B_IP, 40000, 80, SYN), (0, A_IP, B_IP, 40000, 80, TCP, SYN)),
        (udp(A_IP, B_IP, 5353, 53), (0, A_IP, B_IP, 5353, 53, UDP, 0)),
        (sctp(A_IP, B_IP, 7, 5000), (0, A_IP, B_IP, 7, 5000, SCTP, 0)),
        (icmp(A_IP, B_IP), (0, A_IP, B_IP, 0, 0, ICMP, 0)),
        (frame(ipv4(A_IP, B_IP, 47, b"gre!")), (0, A_IP, B_IP, 0, 0, 47, 0)),
        (
            frame(ipv4(A_IP, B_IP, UDP, struct.pack("!HHHH", 9, 10, 8, 0), options=bytes(8))),
            (0, A_IP, B_IP, 9, 10, UDP, 0),
        ),
        (frame(ipv4(A_IP, B_IP, UDP, b"later", frag=3)), (FRAGMENT, A_IP, B_IP, 0, 0, UDP, 0)),
        (frame(ipv4(A_IP, B_IP, TCP, b"\x00\x01")), (DROP_INVALID, A_IP, B_IP, 0, 0, TCP, 0)),
        (_ihl15_udp(), (DROP_INVALID, A_IP, B_IP, 0, 0, UDP, 0)),
        (frame(bytes(28), ethertype=0x0806), (PASS, "0.0.0.0", "0.0.0.0", 0, 0, 0, 0)),
        (frame(bytes(40), ethertype=0x86DD), (PASS, "0.0.0.0", "0.0.0.0", 0, 0, 0, 0)),
    ],
    ids=[
        "tcp",
        "udp",
        "sctp",
        "icmp",
        "gre",
        "ip-options",
        "later-fragment",
        "short-tcp",
        "ihl-past-end",
        "arp",
        "ipv6",
    ],
)
def test_parse(parse_object: libbpf.BpfObject, packet: bytes, expected: tuple[int, ...]) -> None:
    assert parse(parse_object, packet) == expected


def test_bad_version_and_ihl_are_invalid(parse_object: libbpf.BpfObject) -> None:
    packet = bytearray(udp(A_IP, B_IP, 1, 2))
    for first_byte in (0x45 & 0x0F | 0x60, 0x44):  # version 6 in an IPv4 frame; ihl 4
        packet[14] = first_byte
        assert parse(parse_object, bytes(packet))[0] == DROP_INVALID
