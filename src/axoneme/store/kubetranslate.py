"""Kubernetes API JSON ↔ the store's values (pure, sans-io).

What the Kubernetes API source needs to turn API server answers into
``Listing`` and ``WatchEvent`` values: where each kind lives (its list path),
list bodies (whose items carry no ``kind``/``apiVersion``), and watch stream
lines (ADDED / MODIFIED / DELETED, BOOKMARK, ERROR). ``resourceVersion`` is
opaque in Kubernetes; every API server in practice serves etcd revisions, and
the store's revisions must be comparable, so a non-numeric one is refused
with a clear error. A 410 Gone (an ERROR event or the list call) raises
``ResourceExpiredError``: the informer relists, as client-go's reflector does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from axoneme.store.types import Listing, Resource, StoreError, WatchEvent


class ResourceExpiredError(StoreError):
    """410 Gone: the requested resourceVersion is compacted away; list again."""


@dataclass(frozen=True)
class KubeResource:
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        where = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        tail = f"/{name}" if name else ""
        return f"{root}{where}/{self.plural}{tail}"


# The kinds the agent, operator and CLI read, where a real cluster keeps them.
RESOURCES: dict[str, KubeResource] = {
    "Namespace": KubeResource("", "v1", "namespaces", False),
    "Node": KubeResource("", "v1", "nodes", False),
    "Pod": KubeResource("", "v1", "pods", True),
    "Service": KubeResource("", "v1", "services", True),
    "EndpointSlice": KubeResource("discovery.k8s.io", "v1", "endpointslices", True),
    "NetworkPolicy": KubeResource("networking.k8s.io", "v1", "networkpolicies", True),
    "CiliumNetworkPolicy": KubeResource("cilium.io", "v2", "ciliumnetworkpolicies", True),
    "CiliumClusterwideNetworkPolicy": KubeResource(
        "cilium.io", "v2", "ciliumclusterwidenetworkpolicies", False
    ),
    "CiliumIdentity": KubeResource("cilium.io", "v2", "ciliumidentities", False),
    "CiliumEndpoint": KubeResource("cilium.io", "v2", "ciliumendpoints", True),
    "CiliumNode": KubeResource("cilium.io", "v2", "ciliumnodes", False),
    "CiliumPodIPPool": KubeResource("cilium.io", "v2alpha1", "ciliumpodippools", False),
}


def resource_of(kind: str) -> KubeResource:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise StoreError(
            f"kind {kind!r} is not served by the Kubernetes API source "
            f"(known: {', '.join(sorted(RESOURCES))})"
        ) from None


def revision_of(meta: Any, where: str) -> int:
    """A resourceVersion as a comparable revision (``where`` names the field on error)."""
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    if rv is None or rv == "":
        raise StoreError(f"{where}.resourceVersion: missing")
    try:
        return int(str(rv))
    except ValueError:
        raise StoreError(
            f"{where}.resourceVersion: {rv!r} is not numeric; this source needs an API "
            f"server whose resource versions are etcd revisions"
        ) from None


def _object(kind: str, raw: Any, where: str) -> Resource:
    if not isinstance(raw, dict):
        raise StoreError(f"{where}: not an object")
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise StoreError(f"{where}.metadata.name: missing")
    res = RESOURCES[kind]
    if res.namespaced and not meta.get("namespace"):
        raise StoreError(f"{where}.metadata.namespace: missing for namespaced kind {kind}")
    if raw.get("kind", kind) != kind:
        raise StoreError(f"{where}.kind: {raw.get('kind')!r}, expected {kind!r}")
    obj: Resource = {**raw, "kind": kind}
    obj.setdefault("apiVersion", res.api_version)
    revision_of(meta, f"{where}.metadata")
    return obj


def from_object(kind: str, body: Any) -> Resource:
    """One object as a GET returns it."""
    resource_of(kind)
    if isinstance(body, dict) and body.get("kind") == "Status":
        raise status_error(body, f"{kind} get")
    return _object(kind, body, kind)


def from_list(kind: str, body: Any) -> Listing:
    """A list response (``PodList`` ...) as a Listing at the list's resourceVersion."""
    resource_of(kind)
    if not isinstance(body, dict):
        raise StoreError(f"{kind} list: the response is not a JSON object")
    if body.get("kind") == "Status":
        raise status_error(body, f"{kind} list")
    want = f"{kind}List"
    if body.get("kind") not in (None, want):
        raise StoreError(f"{kind} list: kind {body.get('kind')!r}, expected {want!r}")
    revision = revision_of(body.get("metadata"), f"{want}.metadata")
    items = body.get("items") or []
    if not isinstance(items, list):
        raise StoreError(f"{want}.items: not a list")
    return Listing(
        [_object(kind, raw, f"{want}.items[{i}]") for i, raw in enumerate(items)], revision
    )


def status_error(status: dict[str, Any], what: str) -> StoreError:
    code = status.get("code")
    message = f"{what}: {status.get('reason', 'Failure')} ({code}): {status.get('message', '')}"
    if code == 410:
        return ResourceExpiredError(message)
    return StoreError(message)


@dataclass(frozen=True)
class Bookmark:
    """A BOOKMARK: nothing changed, but the watch has seen up to ``revision``."""

    revision: int


def translate_event(kind: str, raw: Any) -> WatchEvent | Bookmark:
    """One watch stream event. Raises ResourceExpiredError on 410, StoreError on others."""
    if not isinstance(raw, dict) or not isinstance(raw.get("object"), dict):
        raise StoreError(f"{kind} watch: an event without an object: {raw!r:.200}")
    etype, obj = raw.get("type"), raw["object"]
    if etype == "ERROR":
        raise status_error(obj, f"{kind} watch")
    if etype == "BOOKMARK":
        return Bookmark(revision_of(obj.get("metadata"), f"{kind} watch BOOKMARK.object.metadata"))
    if etype not in ("ADDED", "MODIFIED", "DELETED"):
        raise StoreError(
            f"{kind} watch: event type {etype!r} is not ADDED/MODIFIED/DELETED/BOOKMARK/ERROR"
        )
    where = f"{kind} watch {etype}.object"
    out = _object(kind, obj, where)
    return WatchEvent(etype, out, revision_of(out["metadata"], f"{where}.metadata"))


def translate_line(kind: str, line: bytes) -> WatchEvent | Bookmark | None:
    """One line of a ``?watch=true`` response body (None for a keep-alive blank line)."""
    if not line.strip():
        return None
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise StoreError(f"{kind} watch: a line that is not JSON: {exc}") from exc
    return translate_event(kind, raw)


def watch_query(since: int, timeout_seconds: int = 300) -> list[tuple[str, str]]:
    """Query for a watch from just after ``since``, with bookmarks (as client-go asks)."""
    return [
        ("watch", "true"),
        ("resourceVersion", str(since)),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(timeout_seconds)),
    ]
