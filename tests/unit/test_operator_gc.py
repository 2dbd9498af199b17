"""Operator GC decisions: live nodes from node entries, stale endpoints, the grace debounce."""

from __future__ import annotations

from typing import Any

from axoneme.operator.gc import Suspects, live_nodes, stale_endpoints
from axoneme.store.types import Key


def cep(ns: str, name: str, node_ip: str) -> dict[str, Any]:
    return {
        "kind": "CiliumEndpoint",
        "metadata": {"name": name, "namespace": ns},
        "status": {"networking": {"node": node_ip}},
    }


def pod(ns: str, name: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns}}


def test_live_nodes_from_entries() -> None:
    entries = [
        {"metadata": {"name": "n1"}, "spec": {"addresses": [{"type": "InternalIP", "ip": "1.1"}]}},
        {"metadata": {"name": "n2"}, "spec": {}},
    ]
    assert live_nodes(entries) == {"n1": "1.1", "n2": ""}


def test_stale_endpoints_by_pod_and_by_node() -> None:
    ceps = [cep("d", "ok", "1.1"), cep("d", "gone", "1.1"), cep("d", "orphan", "9.9")]
    stale = stale_endpoints(ceps, [pod("d", "ok"), pod("d", "orphan")], {"1.1"})
    assert stale == {
        Key("CiliumEndpoint", "d", "gone"): "its pod is gone",
        Key("CiliumEndpoint", "d", "orphan"): "its node 9.9 is not live",
    }


def test_suspects_need_two_sightings_grace_apart() -> None:
    s = Suspects(grace=10)
    a, b = Key("CiliumEndpoint", "d", "a"), Key("CiliumEndpoint", "d", "b")
    assert s.due([a], now=0) == []
    assert s.due([a, b], now=5) == []
    assert s.due([a, b], now=10) == [a]
    assert s.due([b], now=12) == []  # a recovered: forgotten
    assert s.due([a, b], now=15) == [b]
    assert s.due([a], now=20) == []  # a starts over
