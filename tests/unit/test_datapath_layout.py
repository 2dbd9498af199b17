"""Every Python struct twin matches the C layout in the BTF of bpf/build/bpf_lxc.o.

Member names, byte offsets, member sizes and the struct size are compared
for each struct of docs/datapath.md. Needs the toolchain (clang, bpftool),
not root: ``make -C bpf`` runs first and is a no-op when up to date.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from axoneme.datapath import events
from axoneme.datapath.linux.maps import LAYOUTS, Layout

BPF = Path(__file__).resolve().parents[2] / "bpf"
EVENT = Layout("event", events.EVENT_MEMBERS, events.EVENT_SIZE)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        reason = f"needs {tool} (make deps installs it)"
        if os.environ.get("AXONEME_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@cache
def btf_structs(obj: str = "bpf_lxc.o") -> dict[str, tuple[int, list[tuple[str, int, int]]]]:
    """struct name -> (size, [(member, byte offset, byte size)]) from the object's BTF."""
    subprocess.run(["make", "-s", "-C", str(BPF), f"build/{obj}"], check=True)
    dump = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(BPF / "build" / obj), "format", "raw"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    types: dict[int, dict[str, Any]] = {t["id"]: t for t in json.loads(dump)["types"]}

    def size(type_id: int) -> int:
        t = types[type_id]
        if t["kind"] in ("TYPEDEF", "CONST", "VOLATILE"):
            return size(t["type_id"])
        if t["kind"] == "ARRAY":
            return int(t["nr_elems"]) * size(t["type_id"])
        return int(t["size"])

    out = {}
    for t in types.values():
        if t["kind"] == "STRUCT" and t["name"] != "(anon)":
            members = [(m["name"], m["bits_offset"] // 8, size(m["type_id"])) for m in t["members"]]
            out[t["name"]] = (int(t["size"]), members)
    return out


@pytest.mark.parametrize("layout", [*LAYOUTS, EVENT], ids=lambda layout: layout.c_name)
def test_struct_matches_btf(layout: Layout) -> None:
    _need("clang-19" if shutil.which("clang-19") else "clang")
    _need("bpftool")
    structs = btf_structs()
    assert layout.c_name in structs, f"struct {layout.c_name} is not in the object's BTF"
    c_size, c_members = structs[layout.c_name]
    python = [
        (name, offset, struct.calcsize("=" + code))
        for (name, offset), (_, code) in zip(layout.offsets(), layout.members, strict=True)
    ]
    assert (layout.size, python) == (c_size, c_members)


def test_every_contract_struct_has_a_twin() -> None:
    twins = {layout.c_name for layout in (*LAYOUTS, EVENT)}
    assert twins == {
        "lxc_info", "ipcache_key", "ipcache_value", "policy_key", "policy_cidr_key",
        "ports_key", "ports_value", "ct_key", "ct_value", "metric", "event",
        "datapath_config", "ipv4_frag_key", "ipv4_frag_ports",
    }  # fmt: skip
