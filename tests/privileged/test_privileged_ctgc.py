"""Conntrack GC on a real pinned ``axo_ct``: expired entries go, live ones stay, and the
agent's families report the run."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

from axoneme.agent import ctgc as agent_ctgc
from axoneme.datapath.ctgc import collect
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import CtKey, CtValue
from axoneme.metrics import REGISTRY
from privileged.bpfenv import require_datapath

S = 1_000_000_000


def key(port: int, proto: int = socket.IPPROTO_TCP) -> CtKey:
    return CtKey("10.0.0.1", "10.0.0.2", port, 80, proto, 1)


def test_gc_removes_expired_entries_only() -> None:
    require_datapath()
    pin = Path(f"/sys/fs/bpf/axt-ctgc-{uuid.uuid4().hex[:8]}")
    dp = Datapath.open(pin)
    try:
        now = time.monotonic_ns()
        entries = {
            key(1): CtValue(0, now - 1 * S, 3, 180, 1001, 7, reply_seen=1),  # established
            key(2): CtValue(0, now - 61 * S, 1, 60, 1001, 7),  # SYN never answered
            key(3): CtValue(0, now - 11 * S, 9, 900, 1001, 7, reply_seen=1, closing=1),
            key(4, socket.IPPROTO_UDP): CtValue(0, now - 30 * S, 2, 80, 1001, 7),
            key(5, socket.IPPROTO_UDP): CtValue(0, now - 90 * S, 2, 80, 1001, 7),
        }
        for k, v in entries.items():
            dp.ct.raw.update(k.pack(), v.pack())
        result = collect(dp.ct, now)
        assert (result.alive, result.deleted) == (2, 3)
        assert {k for k, _ in dp.ct.items()} == {key(1), key(4, socket.IPPROTO_UDP)}
        assert collect(dp.ct, now).deleted == 0  # nothing left to remove

        runs = REGISTRY.get_sample_value("axoneme_datapath_conntrack_gc_runs_total") or 0.0
        agent_ctgc.record(agent_ctgc.collect_pinned(pin))
        assert (
            REGISTRY.get_sample_value("axoneme_datapath_conntrack_gc_entries", {"status": "alive"})
            == 2
        )
        assert REGISTRY.get_sample_value("axoneme_datapath_conntrack_gc_runs_total") == runs + 1
    finally:
        dp.close()
        Datapath.remove(pin)
    assert not pin.exists()
