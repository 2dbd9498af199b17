"""Agent metrics read from a real loaded datapath: map fill levels and drop counters."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from axoneme.agent import metrics
from axoneme.datapath.linux.bpfsys import nr_possible_cpus
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import IPCacheValue
from privileged.bpfenv import require_datapath


@pytest.fixture
def datapath() -> Iterator[Datapath]:
    require_datapath()
    pin_dir = Path(f"/sys/fs/bpf/axt-metrics-{os.getpid()}")
    dp = Datapath.open(pin_dir)
    try:
        yield dp
    finally:
        dp.close()
        Datapath.remove(pin_dir)
    assert not pin_dir.exists()


def test_read_kernel_counts_map_entries_and_drops(datapath: Datapath) -> None:
    for i in range(5):
        datapath.ipcache.set(f"10.99.{i}.0/24", IPCacheValue(300 + i, "0.0.0.0"))
    # Per-CPU counters as the datapath writes them: one (packets, bytes) slot per CPU.
    slots = [(3, 300)] + [(1, 100)] * (nr_possible_cpus() - 1)
    value = b"".join(struct.pack("=QQ", p, b) for p, b in slots)
    datapath.metrics.raw.update(struct.pack("=I", 133), value)
    datapath.metrics.raw.update(struct.pack("=I", 0), value)

    reading = metrics.read_kernel(datapath.pin_dir)

    cpus = nr_possible_cpus()
    ipcache = reading.maps["axo_ipcache"]
    assert ipcache.entries == 5 and ipcache.max_entries == datapath.ipcache.raw.max_entries
    assert reading.maps["axo_ct"].entries == 0
    assert "axo_events" not in reading.maps  # a ring buffer has no fill level
    assert "axo_metrics" not in reading.maps  # nor an array
    assert reading.drops[133] == (3 + (cpus - 1), 300 + 100 * (cpus - 1))
    assert reading.lost_events == 3 + (cpus - 1)
