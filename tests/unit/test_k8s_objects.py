"""Manifest validation: valid objects parse, invalid ones name the field."""

from __future__ import annotations

from typing import Any

import pytest

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.manifest import parse_manifest
from axoneme.k8s.objects import ContainerPort, parse_node, parse_pod, validate


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x"}], **spec},
    }


def test_pod_parses_ports_labels_and_service_account() -> None:
    raw = pod(
        nodeName="node1",
        serviceAccountName="sa1",
        containers=[
            {
                "name": "c",
                "image": "x",
                "ports": [
                    {"containerPort": 80, "name": "http"},
                    {"containerPort": 53, "protocol": "UDP"},
                ],
            }
        ],
    )
    p = parse_pod(raw)
    assert p.ref == "demo/web"
    assert p.labels == {"app": "web"}
    assert p.node_name == "node1"
    assert p.service_account == "sa1"
    assert p.ports == (ContainerPort(80, "TCP", "http"), ContainerPort(53, "UDP", ""))


def test_pod_namespace_defaults_to_default() -> None:
    raw = pod()
    del raw["metadata"]["namespace"]
    assert validate(raw)["metadata"]["namespace"] == "default"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.update(apiVersion="v2"), "apiVersion"),
        (lambda p: p["metadata"].pop("name"), "metadata.name"),
        (lambda p: p["metadata"].update(name="Bad_Name"), "metadata.name"),
        (lambda p: p["metadata"].update(namespace="a" * 64), "metadata.namespace"),
        (lambda p: p["metadata"].update(labels={"app": "x y"}), "metadata.labels['app']"),
        (lambda p: p["metadata"].update(labels={"-bad": "x"}), "metadata.labels['-bad']"),
        (lambda p: p["spec"].update(containers=[]), "spec.containers"),
        (lambda p: p["spec"]["containers"][0].pop("image"), "spec.containers[0].image"),
        (
            lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": 0}]),
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": "80"}]),
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(
                ports=[{"containerPort": 80, "protocol": "ICMP"}]
            ),
            "spec.containers[0].ports[0].protocol",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(
                ports=[{"containerPort": 80, "name": "HTTP"}]
            ),
            "spec.containers[0].ports[0].name",
        ),
        (
            lambda p: p["spec"]["containers"][0].update(
                ports=[{"containerPort": 80, "name": "a"}, {"containerPort": 81, "name": "a"}]
            ),
            "spec.containers[0].ports[1].name",
        ),
        (lambda p: p["spec"].update(nodeName="Node_1"), "spec.nodeName"),
    ],
)
def test_invalid_pod_names_the_field(mutate: Any, field: str) -> None:
    raw = pod()
    mutate(raw)
    with pytest.raises(ValidationError) as exc:
        validate(raw)
    assert exc.value.field == field


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValidationError, match="kind"):
        validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


def test_manifest_is_all_or_nothing_and_says_which_object() -> None:
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo}
spec: {containers: [{name: c}]}
"""
    with pytest.raises(ValidationError) as exc:
        parse_manifest(text, "f.yaml")
    assert "f.yaml (object 2)" in str(exc.value)
    assert exc.value.field == "spec.containers[0].image"


def test_manifest_accepts_json_and_lists() -> None:
    text = (
        '{"apiVersion": "v1", "kind": "List", "items": ['
        '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}]}'
    )
    assert [o["metadata"]["name"] for o in parse_manifest(text, "x")] == ["a"]


@pytest.mark.parametrize("text", ["", "a: [", "just a string", "- 1\n- 2"])
def test_manifest_garbage_is_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_manifest(text, "x")


def test_node_pod_cidr_and_internal_ip() -> None:
    node = parse_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.42.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.11"}]},
        }
    )
    assert node.pod_cidrs == ("10.42.1.0/24",)
    assert node.internal_ip == "172.30.0.11"
    with pytest.raises(ValidationError, match=r"spec.podCIDRs\[0\]"):
        parse_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n1"},
                "spec": {"podCIDR": "10.42.1.0/33"},
            }
        )
