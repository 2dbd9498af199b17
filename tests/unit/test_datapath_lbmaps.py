"""The load-balancing map twins: packing round trips, and axo_lb_xlate's entries
laid out as bpf/lib/lbxlate.h's structs in bpf_lxc.o's BTF."""

from __future__ import annotations

import shutil

import pytest

from axoneme.datapath.linux.lbmaps import (
    LB_XLATE_FWD,
    LB_XLATE_REV,
    XLATE_KEY,
    XLATE_VALUE,
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
