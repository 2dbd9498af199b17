"""The policy writer's batch steps (datapath/linux/writer.py) on a real kernel map:
one MAP_UPDATE_BATCH / MAP_DELETE_BATCH per step, and when the kernel refuses
a batch, entry by entry, with the mirror left equal to what the map holds."""

from __future__ import annotations

import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from axoneme.datapath.linux.bpfsys import BpfMap
from axoneme.datapath.linux.writer import delete_stale, write_changed
from privileged.bpfenv import require_datapath

pytestmark = pytest.mark.privileged

U32 = struct.Struct("=I")
CAPACITY = 4


def pack(k: int, v: int) -> tuple[bytes, bytes]:
    return U32.pack(k), U32.pack(v)


def contents(m: BpfMap) -> dict[int, int]:
    return {U32.unpack(k)[0]: U32.unpack(v)[0] for k, v in m.items()}


@pytest.fixture
def small_map() -> Iterator[BpfMap]:
    """A 4-entry hash map of u32 -> u32, pinned under a private name."""
    require_datapath()
    pin = Path(f"/sys/fs/bpf/axt-wbatch-{uuid.uuid4().hex[:8]}")
    subprocess.run(
        ["bpftool", "map", "create", str(pin), "type", "hash", "key", "4", "value", "4",
         "entries", str(CAPACITY), "name", "axt_wbatch"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        with BpfMap.open_pinned(pin) as m:
            yield m
    finally:
        pin.unlink(missing_ok=True)


def test_changed_entries_are_written_and_unchanged_ones_not(small_map: BpfMap) -> None:
    mirror: dict[int, int] = {}
    assert write_changed(small_map, mirror, {1: 10, 2: 20}, pack) == 2
    assert contents(small_map) == mirror == {1: 10, 2: 20}
    small_map.update(*pack(1, 99))  # not through the writer: the mirror says 10
    assert write_changed(small_map, mirror, {1: 10, 2: 21}, pack) == 1  # only 2 changed
    assert contents(small_map) == {1: 99, 2: 21} and mirror == {1: 10, 2: 21}


def test_a_refused_batch_is_redone_entry_by_entry_and_the_mirror_follows(
    small_map: BpfMap,
) -> None:
    mirror: dict[int, int] = {}
    with pytest.raises(OSError):  # six entries, room for four
        write_changed(small_map, mirror, {k: k * 10 for k in range(1, 7)}, pack)
    assert len(contents(small_map)) == CAPACITY
    assert mirror == contents(small_map)


def test_stale_keys_go_in_one_batch_or_one_by_one(small_map: BpfMap) -> None:
    mirror: dict[int, int] = {}
    write_changed(small_map, mirror, {1: 10, 2: 20, 3: 30}, pack)
    assert delete_stale(small_map, mirror, {1: 10}, lambda k: U32.pack(k)) == 2
    assert contents(small_map) == mirror == {1: 10}
    write_changed(small_map, mirror, {1: 10, 2: 20, 3: 30}, pack)
    small_map.delete(U32.pack(2))  # gone behind the writer's back: the batch fails
    assert delete_stale(small_map, mirror, {}, lambda k: U32.pack(k)) == 3
    assert contents(small_map) == mirror == {}
