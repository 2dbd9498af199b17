"""The service map writer on real pinned maps (bpf_sock.o's): incremental changes
leave the kernel's maps exactly as a full recompute says, a restarted writer adopts
them and writes nothing, a resync after a restart removes what is stale, and a
backend that leaves every service takes its north-south NAT entries along."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from axoneme.datapath.linux import hostlb, socklb
from axoneme.datapath.linux.lbmaps import NAT_F_INGRESS, NAT_F_REDIRECT, Nat, NatKey
from axoneme.datapath.linux.lbprogram import WRITE_ORDER, ids_of, program
from axoneme.datapath.linux.lbwriter import LBWriter
from axoneme.datapath.linux.loader import Datapath
from axoneme.datapath.linux.maps import NatMap
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


def test_removed_backends_take_their_nat_entries(pin_dir: Path) -> None:
    """A backend that leaves every service loses its axo_lb_nat entries (forward
    and reverse); a terminating one, and other backends, keep theirs."""
    hostlb.load(pin_dir)  # bpf_host.o pins axo_lb_nat next to the service maps
    a, b = BackendAddr("10.42.0.1", 8080, "TCP"), BackendAddr("10.42.0.2", 8080, "TCP")

    def fe(*backends: BackendAddr) -> Frontend:
        active = tuple(x for x in backends if not x.terminating) or backends
        return Frontend("10.99.0.1", 30080, "TCP", "NodePort", "demo/np", "http", backends,
                        active, "random", 0)  # fmt: skip

    def flow(sport: int, be: BackendAddr) -> list[tuple[NatKey, Nat]]:
        fwd = NatKey("203.0.113.7", "10.99.0.1", sport, 30080, 6)
        to = Nat("10.99.0.9", be.ip, sport, be.port, NAT_F_INGRESS | NAT_F_REDIRECT, 1)
        back = Nat("10.99.0.1", "203.0.113.7", 30080, sport, NAT_F_INGRESS | NAT_F_REDIRECT, 1)
        return [(fwd, to), (to.partner(fwd), back)]

    writer = LBWriter.open(pin_dir)
    try:
        writer.sync([fe(a, b)], MAGLEV)
        with NatMap.open(pin_dir) as nat:
            for k, v in [*flow(40001, a), *flow(40002, b)]:
                nat.set(k, v)
            # a terminating: still in the maps, its flows keep their entries.
            writer.sync([fe(BackendAddr(a.ip, a.port, "TCP", terminating=True), b)], MAGLEV)
            assert len(nat.items()) == 4
            writer.apply({fe(b).key: fe(b)})  # a gone
            assert dict(nat.items()) == dict(flow(40002, b))
            writer.sync([], MAGLEV)  # b gone too
            assert nat.items() == []
    finally:
        writer.close()
