"""Decoding ``axo_tcp_retrans`` entries, and the Python twins against the object's BTF."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from axoneme.datapath.linux import tcpretrans

BPF = Path(__file__).resolve().parents[2] / "bpf"


def test_decode_reads_network_order_tuple_and_host_order_counters() -> None:
    key = bytes([10, 200, 1, 5, 10, 200, 2, 7]) + (40000).to_bytes(2, "big") + b"\x00\x50"
    value = tcpretrans.VALUE.pack(17, 2_000, 1_000)  # segments, last, first
    entry = tcpretrans.decode(key, value)
    assert entry == tcpretrans.RetransEntry(
        saddr="10.200.1.5",
        sport=40000,
        daddr="10.200.2.7",
        dport=80,
        segments=17,
        first_seen_ns=1_000,
        last_seen_ns=2_000,
    )


def test_decode_refuses_a_key_of_another_size() -> None:
    with pytest.raises(Exception, match="unpack requires"):
        tcpretrans.decode(b"\x00" * 8, tcpretrans.VALUE.pack(1, 1, 1))


def test_load_without_the_object_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.o"
    with pytest.raises(tcpretrans.TcpRetransError, match=r"nope\.o is missing"):
        tcpretrans.load(tmp_path, object_path=missing)
    assert list(tmp_path.iterdir()) == []  # nothing pinned or made


def _btf_struct(name: str) -> tuple[int, list[tuple[str, int]]]:
    if shutil.which("bpftool") is None:
        pytest.skip("needs bpftool (make deps installs it)")
    subprocess.run(["make", "-s", "-C", str(BPF), "build/bpf_tcpretrans.o"], check=True)
    dump = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(BPF / "build/bpf_tcpretrans.o")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for t in json.loads(dump)["types"]:
        if t["kind"] == "STRUCT" and t["name"] == name:
            return int(t["size"]), [(m["name"], m["bits_offset"] // 8) for m in t["members"]]
    raise AssertionError(f"struct {name} not in the BTF")


def test_key_and_value_match_the_c_layout() -> None:
    size, members = _btf_struct("tcp_retrans_key")
    assert size == tcpretrans.KEY.size
    assert members == [("saddr", 0), ("daddr", 4), ("sport", 8), ("dport", 10)]
    size, members = _btf_struct("tcp_retrans_value")
    assert size == tcpretrans.VALUE.size
    assert members == [("segments", 0), ("last_seen_ns", 8), ("first_seen_ns", 16)]
