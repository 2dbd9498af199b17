"""What apply writes: new objects get system fields; pod specs are immutable."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from axoneme.k8s.apply import merge, new_object
from axoneme.k8s.errors import ValidationError

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "x"}]},
}


def test_new_object_sets_uid_timestamp_and_pending() -> None:
    obj = new_object(POD, uid="u1", created="2026-01-01T00:00:00Z")
    assert obj["metadata"]["uid"] == "u1"
    assert obj["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert obj["status"] == {"phase": "Pending"}
    assert "uid" not in POD["metadata"]  # the input is not modified


def test_label_change_is_merged_and_status_kept() -> None:
    stored = new_object(POD, uid="u1")
    stored["spec"]["nodeName"] = "node1"  # bound by the scheduler
    stored["status"] = {"phase": "Running", "podIP": "10.42.1.2"}
    desired = copy.deepcopy(POD)
    desired["metadata"]["labels"] = {"app": "web", "tier": "front"}
    merged = merge(stored, desired)
    assert merged["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert merged["metadata"]["uid"] == "u1"
    assert merged["status"]["podIP"] == "10.42.1.2"
    assert merged["spec"]["nodeName"] == "node1"


def test_pod_spec_change_is_forbidden() -> None:
    stored = new_object(POD)
    desired = copy.deepcopy(POD)
    desired["spec"]["serviceAccountName"] = "other"
    with pytest.raises(ValidationError) as exc:
        merge(stored, desired)
    assert exc.value.field == "spec.serviceAccountName"


def test_policy_update_replaces_spec_and_specs() -> None:
    stored = new_object(
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"endpointSelector": {}},
        }
    )
    desired = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "p", "namespace": "d"},
        "specs": [{"endpointSelector": {}}],
    }
    merged = merge(stored, desired)
    assert "spec" not in merged and merged["specs"] == [{"endpointSelector": {}}]
    assert merged["metadata"]["uid"] == stored["metadata"]["uid"]
