"""Cluster-wide endpoint records: one ``CiliumEndpoint`` per pod, so every node
learns every pod's IP → identity (pure: build and parse, no I/O).

The object has the shape of Cilium's CRD (namespaced, named after the pod)::

    apiVersion: cilium.io/v2
    kind: CiliumEndpoint
    metadata: {name: <pod>, namespace: <ns>}
    status:
      id: <endpoint id, node-local>
      identity: {id: <numeric identity>, labels: ["k8s:app=web", ...]}
      networking:
        addressing: [{ipv4: 10.0.1.5}]
        node: <IP of the node hosting the pod>
      state: ready

The node hosting the endpoint writes it; every node watches them all and feeds
``(ip, identity, node ip)`` into ``ipcache.model.desired_ipcache``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from axoneme.identity.reserved import NumericIdentity
from axoneme.ipcache.model import EndpointIP
from axoneme.labels.model import SOURCE_K8S, Label, LabelSet, format_labels
from axoneme.store.types import Key, Resource

ENDPOINT_KIND = "CiliumEndpoint"
ENDPOINT_API_VERSION = "cilium.io/v2"


@dataclass(frozen=True)
class EndpointRecord:
    namespace: str
    name: str
    endpoint_id: int
    identity: NumericIdentity
    labels: LabelSet
    ipv4: str
    node_ip: str
    state: str = "ready"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def endpoint_key(namespace: str, name: str) -> Key:
    return Key(ENDPOINT_KIND, namespace, name)


def endpoint_object(record: EndpointRecord) -> Resource:
    return {
        "apiVersion": ENDPOINT_API_VERSION,
        "kind": ENDPOINT_KIND,
        "metadata": {"name": record.name, "namespace": record.namespace},
        "status": {
            "id": record.endpoint_id,
            "identity": {"id": int(record.identity), "labels": format_labels(record.labels)},
            "networking": {
                "addressing": [{"ipv4": record.ipv4}] if record.ipv4 else [],
                "node": record.node_ip,
            },
            "state": record.state,
        },
    }


def _field(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise ValueError(f"CiliumEndpoint: {path} is missing")
        obj = obj[part]
    return obj


def _ip(value: Any, path: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError as exc:
        raise ValueError(f"CiliumEndpoint: {path} {value!r} is not an IP address") from exc


def parse_endpoint(obj: Resource) -> EndpointRecord:
    """The record in a stored CiliumEndpoint; ValueError naming the bad field."""
    if obj.get("kind") != ENDPOINT_KIND:
        raise ValueError(f"not a {ENDPOINT_KIND}: kind {obj.get('kind')!r}")
    name = _field(obj, "metadata.name")
    namespace = _field(obj, "metadata.namespace")
    identity = _field(obj, "status.identity.id")
    endpoint_id = _field(obj, "status.id")
    if not isinstance(identity, int) or identity < 0:
        raise ValueError("CiliumEndpoint: status.identity.id must be a non-negative integer")
    if not isinstance(endpoint_id, int) or endpoint_id < 0:
        raise ValueError("CiliumEndpoint: status.id must be a non-negative integer")
    raw_labels = obj["status"]["identity"].get("labels", [])
    if not isinstance(raw_labels, list):
        raise ValueError("CiliumEndpoint: status.identity.labels must be a list")
    labels = frozenset(Label.parse(str(text), default_source=SOURCE_K8S) for text in raw_labels)
    addressing = _field(obj, "status.networking.addressing")
    if not isinstance(addressing, list):
        raise ValueError("CiliumEndpoint: status.networking.addressing must be a list")
    ipv4 = ""
    for i, entry in enumerate(addressing):
        if isinstance(entry, dict) and entry.get("ipv4"):
            ipv4 = _ip(entry["ipv4"], f"status.networking.addressing[{i}].ipv4")
            break
    node_ip = _ip(_field(obj, "status.networking.node"), "status.networking.node")
    return EndpointRecord(
        namespace=str(namespace),
        name=str(name),
        endpoint_id=endpoint_id,
        identity=NumericIdentity(identity),
        labels=labels,
        ipv4=ipv4,
        node_ip=node_ip,
        state=str(obj["status"].get("state", "")),
    )


def endpoint_ips(records: Iterable[EndpointRecord]) -> list[EndpointIP]:
    """The ipcache input for these endpoints (those with an IPv4 address)."""
    return [EndpointIP(r.ipv4, int(r.identity), r.node_ip) for r in records if r.ipv4]
