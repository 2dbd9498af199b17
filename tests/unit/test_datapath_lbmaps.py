"""The load-balancing map twins: packing round trips, axo_lb_xlate's entries laid
out as bpf/lib/lbxlate.h's structs in bpf_lxc.o's BTF, and axo_lb_nat's as
bpf/lib/nodeport.h's in bpf_host.o's."""

from __future__ import annotations

import shutil

import pytest

from axoneme.datapath.linux.lbmaps import (
    LB_XLATE_FWD,
    LB_XLATE_REV,
    NAT_F_ESTABLISHED,
    NAT_F_INGRESS,
    NAT_KEY,
    NAT_VALUE,
    XLATE_KEY,
    XLATE_VALUE,
    Nat,
    NatKey,
    Xlate,
    XlateKey,
)
from unit.test_datapath_layout import _need, btf_structs


def test_xlate_entries_round_trip_in_network_order() -> None:
    key = XlateKey("10.0.0.1", "10.96.0.10", 40000, 9000, 132)
    raw = key.pack()
    assert raw[:8] == bytes([10, 0, 0, 1, 10, 96, 0, 10])
    assert raw[8:12] == (40000).to_bytes(2, "big") + (9000).to_bytes(2, "big")
    assert XlateKey.unpack(raw) == key
    for value in (Xlate("10.0.0.2", 7, LB_XLATE_FWD), Xlate("10.96.0.10", 0, LB_XLATE_REV)):
        assert Xlate.unpack(value.pack()) == value


@pytest.mark.parametrize(
    ("c_name", "size", "members"),
    [
        ("lb_xlate_key", XLATE_KEY.size,
         [("saddr", 0, 4), ("daddr", 4, 4), ("sport", 8, 2), ("dport", 10, 2), ("proto", 12, 1),
          ("pad", 13, 3)]),
        ("lb_xlate", XLATE_VALUE.size,
         [("addr", 0, 4), ("backend_id", 4, 4), ("dir", 8, 1), ("pad", 9, 3)]),
    ],
)  # fmt: skip
def test_xlate_structs_match_btf(
    c_name: str, size: int, members: list[tuple[str, int, int]]
) -> None:
    _need("clang-19" if shutil.which("clang-19") else "clang")
    _need("bpftool")
    assert btf_structs()[c_name] == (size, members)


def test_nat_entries_round_trip_in_network_order() -> None:
    key = NatKey("203.0.113.7", "10.99.0.1", 40000, 30080, 6)
    raw = key.pack()
    assert raw[8:12] == (40000).to_bytes(2, "big") + (30080).to_bytes(2, "big")
    assert NatKey.unpack(raw) == key
    value = Nat("10.99.0.1", "10.0.1.5", 40000, 8080, NAT_F_INGRESS | NAT_F_ESTABLISHED, 12345)
    raw = value.pack()
    assert raw[12:20] == (NAT_F_INGRESS | NAT_F_ESTABLISHED).to_bytes(4, "little") + (
        12345
    ).to_bytes(4, "little")
    assert Nat.unpack(raw) == value
    # The other entry of the pair: the value's tuple reversed.
    assert value.partner(key) == NatKey("10.0.1.5", "10.99.0.1", 8080, 40000, 6)


@pytest.mark.parametrize(
    ("c_name", "size", "members"),
    [
        ("lb_nat_key", NAT_KEY.size,
         [("saddr", 0, 4), ("daddr", 4, 4), ("sport", 8, 2), ("dport", 10, 2), ("proto", 12, 1),
          ("pad", 13, 3)]),
        ("lb_nat", NAT_VALUE.size,
         [("saddr", 0, 4), ("daddr", 4, 4), ("sport", 8, 2), ("dport", 10, 2), ("flags", 12, 4),
          ("last_seen", 16, 4)]),
    ],
)  # fmt: skip
def test_nat_structs_match_btf(c_name: str, size: int, members: list[tuple[str, int, int]]) -> None:
    _need("clang-19" if shutil.which("clang-19") else "clang")
    _need("bpftool")
    assert btf_structs("bpf_host.o")[c_name] == (size, members)
