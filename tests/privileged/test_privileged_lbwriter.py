"""The service map writer on real pinned maps (bpf_sock.o's): incremental changes
leave the kernel's maps exactly as a full recompute says, a restarted writer adopts
them and writes nothing, and a resync after a restart removes what is stale."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from axoneme.datapath.linux import socklb
from axoneme.datapath.linux.lbprogram import WRITE_ORDER, ids_of, program
from axoneme.datapath.linux.lbwriter import LBWriter
from axoneme.datapath.linux.loader import Datapath
from axoneme.loadbalancer.state import BackendAddr, Frontend
from privileged.bpfenv import require_datapath

MAGLEV = 251


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    require_datapath()
    pin = Path(f"/sys/fs/bpf/axt-lbw-{uuid.uuid4().hex[:8]}")
    socklb.load(pin, force=True)  # maps and programs only: attached nowhere
    try:
        yield pin
    finally:
        Datapath.remove(pin)


def frontend(i: int, rng: random.Random) -> Frontend:
    hosts = rng.sample(range(1, 40), rng.randint(0, 4))
    backends = tuple(
        BackendAddr(f"10.42.0.{h}", 8080, "TCP", rng.random() < 0.2, rng.choice(["n1", "n2"]))
        for h in sorted(hosts)
    )
    active = tuple(b for b in backends if not b.terminating) or backends
    algorithm = "maglev" if rng.random() < 0.2 else "random"
    return Frontend(f"10.96.1.{i}", 80, "TCP", "ClusterIP", f"demo/s{i}", "http", backends,
                    active, algorithm, rng.choice([0, 10]))  # fmt: skip


def in_kernel(writer: LBWriter) -> dict[str, dict[bytes, bytes]]:
    return {name: dict(writer.map(name).lookup_batch()) for name in WRITE_ORDER}


def test_incremental_writes_match_the_full_recompute(pin_dir: Path) -> None:
    rng = random.Random(7)
    desired = {i: frontend(i, rng) for i in range(1, 60)}
    writer = LBWriter.open(pin_dir)
    try:
        writer.sync(desired.values(), MAGLEV, "n1")
        for step in range(300):
            i = rng.randint(1, 80)
            if rng.random() < 0.3 and i in desired:
                writer.apply({desired.pop(i).key: None})
            else:
                desired[i] = frontend(i, rng)
                writer.apply({desired[i].key: desired[i]})
            if step % 25 == 0:
                ids = ids_of(writer.state.known.values())
                oracle, _ = program(desired.values(), ids, MAGLEV, node="n1")
                assert in_kernel(writer) == oracle.maps == writer.current
        kept = {r: p.svc_id for r, p in writer.state.known.items()}
    finally:
        writer.close()
    # A restarted writer adopts the maps: the same ids, nothing to write.
    again = LBWriter.open(pin_dir)
    try:
        stats = again.sync(desired.values(), MAGLEV, "n1")
        assert (stats.written, stats.deleted) == (0, 0)
        assert {r: p.svc_id for r, p in again.state.known.items()} == kept
        # Services deleted while no agent ran: the resync removes every entry of theirs.
        gone = sorted(desired)[:10]
        for i in gone:
            del desired[i]
        stats = again.sync(desired.values(), MAGLEV, "n1")
        assert stats.deleted >= 10 and stats.services == len(desired)
        oracle, _ = program(desired.values(), ids_of(again.state.known.values()), MAGLEV,
                            node="n1")  # fmt: skip
        assert in_kernel(again) == oracle.maps
    finally:
        again.close()


def test_a_half_written_change_is_converged_by_the_next_full_sync(pin_dir: Path) -> None:
    rng = random.Random(3)
    fes = {i: frontend(i, rng) for i in range(1, 20)}
    writer = LBWriter.open(pin_dir)
    try:
        writer.sync(fes.values(), MAGLEV)
        # The service map's fd gone: backends and slots get written, the services not.
        writer.map("axo_lb_svc").close()
        fes[1] = frontend(1, rng)
        fes[30] = frontend(30, rng)
        with pytest.raises(OSError):
            writer.apply({fes[1].key: fes[1], fes[30].key: fes[30]})
        assert not writer.synced
        with pytest.raises(RuntimeError, match="full sync"):
            writer.apply({})
    finally:
        writer.close()
    again = LBWriter.open(pin_dir)
    try:
        again.sync(fes.values(), MAGLEV)
        oracle, _ = program(fes.values(), ids_of(again.state.known.values()), MAGLEV)
        assert in_kernel(again) == oracle.maps
    finally:
        again.close()
