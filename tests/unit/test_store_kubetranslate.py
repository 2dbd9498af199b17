"""Translation of real Kubernetes API JSON (lists and watch events) into store values,
and the informer's relist on 410 Gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from axoneme.store.informer import run_informer
from axoneme.store.kubetranslate import (
    RESOURCES,
    Bookmark,
    ResourceExpiredError,
    from_list,
    resource_of,
    translate_event,
    translate_line,
    watch_query,
)
from axoneme.store.types import Listing, Resource, StoreError, WatchEvent

# Shaped as an API server answers (kubectl get --raw): list items carry no kind/apiVersion.
POD_LIST = {
    "kind": "PodList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "48213"},
    "items": [
        {
            "metadata": {
                "name": "web-0",
                "namespace": "demo",
                "uid": "6f1c1b1e-2f59-4a8e-9a57-0f2d1f6f3c11",
                "resourceVersion": "48100",
                "labels": {"app": "web"},
                "annotations": {"ipam.cilium.io/ip-pool": "blue"},
            },
            "spec": {
                "nodeName": "node1",
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
                ],
            },
            "status": {"phase": "Running", "podIP": "10.42.1.7", "podIPs": [{"ip": "10.42.1.7"}]},
        }
    ],
}

LISTS: dict[str, dict[str, Any]] = {
    "Namespace": {
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "900"},
        "items": [
            {
                "metadata": {
                    "name": "demo",
                    "resourceVersion": "12",
                    "labels": {"kubernetes.io/metadata.name": "demo"},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        ],
    },
    "Node": {
        "kind": "NodeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "901"},
        "items": [
            {
                "metadata": {"name": "node1", "resourceVersion": "880"},
                "spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]},
                "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"}]},
            }
        ],
    },
    "NetworkPolicy": {
        "kind": "NetworkPolicyList",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {"resourceVersion": "902"},
        "items": [
            {
                "metadata": {"name": "deny", "namespace": "demo", "resourceVersion": "700"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            }
        ],
    },
    "CiliumNetworkPolicy": {
        "kind": "CiliumNetworkPolicyList",
        "apiVersion": "cilium.io/v2",
        "metadata": {"continue": "", "resourceVersion": "903"},
        "items": [
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "l4", "namespace": "demo", "resourceVersion": "701"},
                "spec": {"endpointSelector": {"matchLabels": {"app": "web"}}},
            }
        ],
    },
    "Service": {
        "kind": "ServiceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "904"},
        "items": [
            {
                "metadata": {"name": "web", "namespace": "demo", "resourceVersion": "702"},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": "10.96.0.20",
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                    "selector": {"app": "web"},
                },
            }
        ],
    },
    "EndpointSlice": {
        "kind": "EndpointSliceList",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"resourceVersion": "905"},
        "items": [
            {
                "metadata": {
                    "name": "web-abcde",
                    "namespace": "demo",
                    "resourceVersion": "703",
                    "labels": {"kubernetes.io/service-name": "web"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.42.1.7"], "conditions": {"ready": True}}],
                "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            }
        ],
    },
}


def test_pod_list_items_get_kind_and_api_version_and_the_list_revision() -> None:
    listing = from_list("Pod", POD_LIST)
    assert listing.revision == 48213
    (pod,) = listing.items
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    assert pod["metadata"]["annotations"]["ipam.cilium.io/ip-pool"] == "blue"
    assert pod["status"]["podIP"] == "10.42.1.7"


@pytest.mark.parametrize("kind", sorted(LISTS))
def test_every_kind_list_translates(kind: str) -> None:
    listing = from_list(kind, LISTS[kind])
    assert listing.revision == int(LISTS[kind]["metadata"]["resourceVersion"])
    assert [o["kind"] for o in listing.items] == [kind]
    assert listing.items[0]["apiVersion"] == resource_of(kind).api_version


def test_paths_are_the_api_servers() -> None:
    assert resource_of("Pod").path() == "/api/v1/pods"
    assert resource_of("Pod").path("demo", "web-0") == "/api/v1/namespaces/demo/pods/web-0"
    assert resource_of("Node").path("ignored", "n1") == "/api/v1/nodes/n1"
    assert (
        resource_of("EndpointSlice").path("demo")
        == "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"
    )
    assert (
        resource_of("CiliumClusterwideNetworkPolicy").path()
        == "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
    )
    assert set(RESOURCES) >= {"Pod", "Namespace", "Node", "NetworkPolicy", "Service"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**POD_LIST, "metadata": {"resourceVersion": "abc"}}, "PodList.metadata.resourceVersion"),
        ({**POD_LIST, "metadata": {}}, "PodList.metadata.resourceVersion: missing"),
        ({**POD_LIST, "kind": "ServiceList"}, "expected 'PodList'"),
        ({**POD_LIST, "items": [{"metadata": {"namespace": "d"}}]}, r"items\[0\].metadata.name"),
        (
            {**POD_LIST, "items": [{"metadata": {"name": "x", "resourceVersion": "1"}}]},
            r"items\[0\].metadata.namespace: missing",
        ),
        (
            {**POD_LIST, "items": [{"kind": "Node", "metadata": {"name": "x", "namespace": "d"}}]},
            r"items\[0\].kind",
        ),
        ([], "not a JSON object"),
    ],
)
def test_bad_list_bodies_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        from_list("Pod", body)


def test_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(StoreError, match=r"'Deployment' is not served.*Pod"):
        resource_of("Deployment")


def test_list_answered_with_410_status_is_expired() -> None:
    gone = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "The provided continue parameter is too old",
        "reason": "Expired",
        "code": 410,
    }
    with pytest.raises(ResourceExpiredError, match="Expired \\(410\\)"):
        from_list("Pod", gone)


def event(etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": etype, "object": obj}).encode() + b"\n"


def pod(rv: str, phase: str = "Running") -> dict[str, Any]:
    item = json.loads(json.dumps(POD_LIST["items"][0]))
    item.update(kind="Pod", apiVersion="v1")
    item["metadata"]["resourceVersion"] = rv
    item["status"]["phase"] = phase
    return item


def test_watch_events_added_modified_deleted_bookmark() -> None:
    added = translate_line("Pod", event("ADDED", pod("48214", "Pending")))
    modified = translate_line("Pod", event("MODIFIED", pod("48215")))
    deleted = translate_line("Pod", event("DELETED", pod("48216")))
    bookmark = translate_line(
        "Pod",
        event(
            "BOOKMARK",
            {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {
                    "resourceVersion": "48300",
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        ),
    )
    assert isinstance(added, WatchEvent) and (added.type, added.revision) == ("ADDED", 48214)
    assert isinstance(modified, WatchEvent) and modified.object["status"]["phase"] == "Running"
    assert isinstance(deleted, WatchEvent) and (deleted.type, deleted.revision) == (
        "DELETED",
        48216,
    )
    assert bookmark == Bookmark(48300)
    assert translate_line("Pod", b"\n") is None


def test_watch_error_410_is_expired_other_errors_are_store_errors() -> None:
    gone = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 48000 (48213)",
        "reason": "Expired",
        "code": 410,
    }
    with pytest.raises(ResourceExpiredError, match="too old resource version"):
        translate_line("Pod", event("ERROR", gone))
    forbidden = {**gone, "code": 403, "reason": "Forbidden", "message": "pods is forbidden"}
    with pytest.raises(StoreError, match="Forbidden \\(403\\)") as err:
        translate_line("Pod", event("ERROR", forbidden))
    assert not isinstance(err.value, ResourceExpiredError)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "ADDED"}, "without an object"),
        ({"type": "SYNC", "object": pod("1")}, "'SYNC' is not ADDED"),
        ({"type": "ADDED", "object": pod("x1")}, "ADDED.object.metadata.resourceVersion"),
    ],
)
def test_bad_watch_events(raw: Any, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        translate_event("Pod", raw)
    with pytest.raises(StoreError, match="not JSON"):
        translate_line("Pod", b"{not json\n")


def test_watch_query_starts_after_the_revision_with_bookmarks() -> None:
    q = dict(watch_query(48213))
    assert q["watch"] == "true" and q["resourceVersion"] == "48213"
    assert q["allowWatchBookmarks"] == "true"


class Replay:
    """The read side of a Store replaying API server bodies: a list, then a watch stream
    that ends in 410 Gone; the second list is newer and its watch stays open."""

    def __init__(self) -> None:
        self.lists = 0
        self.watched_from: list[int] = []

    async def list(self, kind: str, namespace: str | None = None) -> Listing:
        self.lists += 1
        body = json.loads(json.dumps(POD_LIST))
        if self.lists > 1:
            body["metadata"]["resourceVersion"] = "49000"
            body["items"] = [pod("48999", "Succeeded")]
            body["items"][0].pop("kind")
        return from_list(kind, body)

    async def watch(self, kind: str, since: int) -> AsyncIterator[WatchEvent]:
        self.watched_from.append(since)
        lines = [event("MODIFIED", pod("48214")), b"\n"]
        if len(self.watched_from) == 1:
            lines.append(
                event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "x"})
            )
        for line in lines:
            got = translate_line(kind, line)
            if isinstance(got, WatchEvent):
                yield got
        await asyncio.Event().wait()


def test_informer_relists_after_410_gone_and_resumes_from_the_new_revision() -> None:
    async def run() -> None:
        store = Replay()
        syncs: list[list[str]] = []
        events: list[int] = []

        async def on_sync(items: list[Resource]) -> None:
            syncs.append([i["status"]["phase"] for i in items])

        async def on_event(ev: WatchEvent) -> None:
            events.append(ev.revision)

        task = asyncio.ensure_future(run_informer(store, "Pod", on_sync, on_event))  # type: ignore[arg-type]
        for _ in range(100):
            if len(syncs) == 2 and len(events) == 2:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert syncs == [["Running"], ["Succeeded"]]
        assert store.watched_from == [48213, 49000]
        assert events == [48214, 48214]

    asyncio.run(run())
