"""Agent metric families: pure counting, the scrape-time collector, event hooks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from axoneme.agent import metrics
from axoneme.agent.enforcement import Enforcement
from axoneme.datapath.fake import FakeDatapath, FakeDriver
from axoneme.endpoint.manager import EndpointManager, PodInfo
from axoneme.identity.reserved import HEALTH, HOST, LOCAL_IDENTITY_FLAG, WORLD
from axoneme.metrics import REGISTRY
from axoneme.store.memory import MemoryStore


def test_identity_types_splits_reserved_cluster_and_node_local() -> None:
    counts = metrics.identity_types([HOST, WORLD, HEALTH, 256, 70000, LOCAL_IDENTITY_FLAG | 3])
    assert counts == {"reserved": 3, "cluster": 2, "node_local": 1}


def test_map_fill_pressure() -> None:
    assert metrics.MapFill(3, 4).pressure == 0.75
    assert metrics.MapFill(0, 0).pressure == 0.0


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    value = registry.get_sample_value(name, labels or {})
    assert value is not None, f"{name}{labels or ''} is not exported"
    return value


def _enforcement(tmp: Path) -> tuple[Enforcement, EndpointManager]:
    manager = EndpointManager(tmp / "state.json", "10.42.1.0/24", FakeDriver())
    return Enforcement("node1", MemoryStore(), manager, FakeDatapath()), manager


def test_collector_reports_endpoints_identities_policy_and_kernel(tmp_path: Path) -> None:
    enf, manager = _enforcement(tmp_path)
    manager.add("c1", "eth0", "/run/netns/a", PodInfo("d", "a", {}, 300))
    manager.add("c2", "eth0", "/run/netns/b", PodInfo("d", "b", {}, 301))
    enf.cidr.allocate("192.0.2.0/24")
    enf.realized_revision = 42
    enf.regenerations = 7
    ctx: Any = SimpleNamespace(manager=manager, enforcement=enf)
    collector = metrics.AgentCollector(ctx)
    collector.update_kernel(
        metrics.KernelReading(
            maps={"axo_ct": metrics.MapFill(10, 40)},
            drops={133: (5, 500), 999: (1, 60)},
            lost_events=3,
        )
    )
    registry = CollectorRegistry()
    registry.register(collector)

    assert _sample(registry, "axoneme_endpoint") == 2
    assert _sample(registry, "axoneme_endpoint_state", {"endpoint_state": "ready"}) == 2
    assert _sample(registry, "axoneme_endpoint_state", {"endpoint_state": "not-ready"}) == 0
    assert _sample(registry, "axoneme_identity", {"type": "node_local"}) == 1
    assert _sample(registry, "axoneme_identity", {"type": "reserved"}) >= 8
    assert _sample(registry, "axoneme_policy_max_revision") == 42
    assert _sample(registry, "axoneme_policy_regeneration_total") == 7
    assert _sample(registry, "axoneme_bpf_map_pressure", {"map_name": "axo_ct"}) == 0.25
    assert _sample(registry, "axoneme_bpf_map_capacity", {"map_name": "axo_ct"}) == 40
    assert _sample(registry, "axoneme_drop_count_total", {"reason": "POLICY_DENIED"}) == 5
    assert _sample(registry, "axoneme_drop_bytes_total", {"reason": "POLICY_DENIED"}) == 500
    assert _sample(registry, "axoneme_drop_count_total", {"reason": "UNKNOWN_999"}) == 1
    assert _sample(registry, "axoneme_datapath_lost_events_total") == 3
    text = generate_latest(registry).decode()
    assert "# TYPE axoneme_drop_count_total counter" in text


def test_regeneration_is_timed_into_the_histogram(tmp_path: Path) -> None:
    enf, _ = _enforcement(tmp_path)
    before = REGISTRY.get_sample_value("axoneme_policy_regeneration_time_stats_seconds_count") or 0
    seen: list[float] = []
    enf.regeneration_observers += [metrics.observe_regeneration, lambda s: seen.append(s.seconds)]
    asyncio.run(enf.regenerate())
    after = REGISTRY.get_sample_value("axoneme_policy_regeneration_time_stats_seconds_count")
    assert after == before + 1
    assert len(seen) == 1 and seen[0] > 0


def test_cni_requests_are_counted_by_command_and_outcome() -> None:
    labels = {"command": "ADD", "outcome": "failure"}
    before = REGISTRY.get_sample_value("axoneme_cni_requests_total", labels) or 0
    metrics.observe_cni("ADD", ok=False)
    assert REGISTRY.get_sample_value("axoneme_cni_requests_total", labels) == before + 1


def test_read_kernel_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    reading = metrics.read_kernel(tmp_path / "none")
    assert reading == metrics.KernelReading()
