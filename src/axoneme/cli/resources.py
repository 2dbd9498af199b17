"""``axoneme apply|delete|get``: Kubernetes manifests in, Kubernetes-shaped output out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from axoneme.cli.context import CLIError, open_store
from axoneme.cli.output import age, table
from axoneme.k8s.allocate import allocate_service
from axoneme.k8s.apply import merge, new_object
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.manifest import parse_manifest
from axoneme.k8s.objects import DEFAULT_NAMESPACE
from axoneme.lab.topology import SERVICE_CIDR
from axoneme.store.types import KINDS, ConflictError, Key, Store, StoreError

KIND_ALIASES = {
    "pods": "Pod",
    "pod": "Pod",
    "po": "Pod",
    "nodes": "Node",
    "node": "Node",
    "no": "Node",
    "namespaces": "Namespace",
    "namespace": "Namespace",
    "ns": "Namespace",
    "services": "Service",
    "service": "Service",
    "svc": "Service",
    "endpointslices": "EndpointSlice",
    "endpointslice": "EndpointSlice",
    # The control plane's own resources (docs/control-plane.md).
    "ciliumnodes": "CiliumNode",
    "ciliumnode": "CiliumNode",
    "cn": "CiliumNode",
    "ciliumpodippools": "CiliumPodIPPool",
    "ciliumpodippool": "CiliumPodIPPool",
    "ippools": "CiliumPodIPPool",
    "clusternodes": "ClusterNode",
    "clusternode": "ClusterNode",
    "ciliumendpoints": "CiliumEndpoint",
    "ciliumendpoint": "CiliumEndpoint",
    "cep": "CiliumEndpoint",
}
# Namespaces must exist before what goes in them, and outlive it; policies
# go in before pods so a new pod never runs a moment without them.
APPLY_ORDER = {
    "Namespace": 0,
    "Node": 1,
    "NetworkPolicy": 2,
    "CiliumNetworkPolicy": 2,
    "CiliumClusterwideNetworkPolicy": 2,
    "Service": 3,
    "EndpointSlice": 3,
    "Pod": 4,
}


def read_manifest(path: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CLIError(f"-f {path}: {exc.strerror}") from exc
    try:
        return parse_manifest(text, "stdin" if path == "-" else path)
    except ValidationError as exc:
        raise CLIError(str(exc)) from exc


async def _check_namespaces(store: Store, objects: list[dict[str, Any]]) -> None:
    declared = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        if (
            ns
            and obj["kind"] != "Namespace"
            and ns not in declared
            and await store.get(Key("Namespace", "", ns)) is None
        ):
            raise CLIError(
                f"{Key.of(obj)}: metadata.namespace: namespace {ns!r} not found "
                "(create it first, or put it in the same manifest)"
            )


async def apply(path: str) -> list[str]:
    objects = read_manifest(path)
    lines, _ = await apply_objects(objects)
    return lines + policy_warnings(objects)


def policy_warnings(objects: list[dict[str, Any]]) -> list[str]:
    """Accepted parts of policies that are not enforced yet: said, never silently dropped."""
    from axoneme.policy.parse import parse_policy
    from axoneme.policy.parse import policy_warnings as warnings_of

    policies = [
        p
        for o in objects
        if o["kind"] in ("NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
        for p in parse_policy(o)
    ]
    return [f"Warning: {w}" for w in warnings_of(policies)]


async def apply_objects(objects: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Write validated objects; the lines to print and the highest store revision written."""
    objects = sorted(objects, key=lambda o: APPLY_ORDER.get(o["kind"], 3))
    store = open_store()
    try:
        await _check_namespaces(store, objects)
        # Work out every write before doing any, so a forbidden change applies nothing.
        writes: list[tuple[dict[str, Any], int | None, str]] = []
        services = (await store.list("Service")).items if _has_service(objects) else []
        for obj in objects:
            stored = await store.get(Key.of(obj))
            if obj["kind"] == "Service":
                # The API server's part: cluster IP and node ports, before merging.
                others = [s for s in services if Key.of(s) != Key.of(obj)]
                try:
                    obj = allocate_service(obj, stored, others, SERVICE_CIDR)
                except ValidationError as exc:
                    raise CLIError(f"{Key.of(obj)}: {exc}") from exc
                services = [*others, obj]
            if stored is None:
                writes.append((new_object(obj), None, "created"))
                continue
            try:
                updated = merge(stored, obj)
            except ValidationError as exc:
                raise CLIError(f"{Key.of(obj)}: {exc}") from exc
            verb = "unchanged" if updated == stored else "configured"
            writes.append((updated, int(stored["metadata"]["resourceVersion"]), verb))
        lines, revision = [], 0
        for obj, expected, verb in writes:
            if verb == "created":
                written = await store.create(obj)
            elif verb == "configured":
                written = await store.put(obj, expect_revision=expected)
            else:
                written = obj
            revision = max(revision, int(written["metadata"].get("resourceVersion", 0)))
            lines.append(f"{obj['kind'].lower()}/{obj['metadata']['name']} {verb}")
        return lines, revision
    except ConflictError as exc:
        raise CLIError(f"{exc}; someone changed it meanwhile, apply again") from exc
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


def _has_service(objects: list[dict[str, Any]]) -> bool:
    return any(o["kind"] == "Service" for o in objects)


async def delete(path: str) -> tuple[list[str], list[str]]:
    objects = sorted(read_manifest(path), key=lambda o: -APPLY_ORDER.get(o["kind"], 3))
    store = open_store()
    done, missing = [], []
    try:
        for obj in objects:
            key = Key.of(obj)
            name = f"{obj['kind'].lower()}/{key.name}"
            if obj["kind"] == "Namespace":
                # Deleting a namespace deletes what is in it, as in Kubernetes.
                for kind in ("Pod", "Service", "EndpointSlice"):
                    for item in (await store.list(kind, key.name)).items:
                        await store.delete(Key.of(item))
            if await store.delete(key):
                done.append(f"{name} deleted")
            else:
                missing.append(f"{name} not found")
        return done, missing
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


async def delete_named(kind: str, name: str, namespace: str | None) -> bool:
    """``axoneme delete KIND NAME``: True if it existed."""
    namespaced = KINDS[kind][1]
    store = open_store()
    try:
        key = Key(kind, (namespace or DEFAULT_NAMESPACE) if namespaced else "", name)
        return await store.delete(key) is not None
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


def kind_of(word: str) -> str:
    try:
        return KIND_ALIASES[word.lower()]
    except KeyError:
        raise CLIError(
            f"resource type {word!r} is not known "
            "(use pods, nodes, namespaces, services, endpointslices, ciliumnodes, "
            "ciliumpodippools, clusternodes or ciliumendpoints)"
        ) from None


async def get(kind: str, namespace: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
    store = open_store()
    try:
        namespaced = kind in ("Pod", "Service", "EndpointSlice")
        ns = None if (all_namespaces or not namespaced) else (namespace or DEFAULT_NAMESPACE)
        return (await store.list(kind, ns)).items
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def render(kind: str, items: list[dict[str, Any]], output: str, all_namespaces: bool) -> str:
    if output == "json":
        return json.dumps(as_list(items), indent=2)
    if output == "yaml":
        return yaml.safe_dump(as_list(items), sort_keys=False).rstrip()
    wide = output == "wide"
    if not items:
        return "No resources found."
    if kind == "Pod":
        headers = ["NAME", "READY", "STATUS", "AGE"] + (["IP", "NODE"] if wide else [])
        rows = []
        for p in items:
            status = p.get("status", {})
            phase = status.get("phase", "Pending")
            shown = status.get("reason") if phase == "Pending" and status.get("reason") else phase
            ready = "1/1" if phase == "Running" else "0/1"
            row = [p["metadata"]["name"], ready, shown, age(p["metadata"].get("creationTimestamp"))]
            if wide:
                row += [status.get("podIP", "<none>"), p.get("spec", {}).get("nodeName", "<none>")]
            rows.append(([p["metadata"]["namespace"]] if all_namespaces else []) + row)
        return table((["NAMESPACE"] if all_namespaces else []) + headers, rows)
    if kind in ("Service", "EndpointSlice"):
        from axoneme.cli.services import render_table

        return render_table(kind, items, all_namespaces)
    if kind in ("CiliumNode", "ClusterNode"):
        return _node_ipam_table(kind, items)
    if kind == "Node":
        headers = ["NAME", "STATUS", "ROLES", "AGE"] + (["INTERNAL-IP", "POD-CIDR"] if wide else [])
        rows = []
        for n in items:
            addrs = {a["type"]: a["address"] for a in n.get("status", {}).get("addresses", [])}
            row = [
                n["metadata"]["name"],
                "Ready",
                "<none>",
                age(n["metadata"].get("creationTimestamp")),
            ]
            if wide:
                row += [addrs.get("InternalIP", "<none>"), n.get("spec", {}).get("podCIDR", "")]
            rows.append(row)
        return table(headers, rows)
    return table(
        ["NAME", "STATUS", "AGE"],
        [
            [
                n["metadata"]["name"],
                n.get("status", {}).get("phase", "Active"),
                age(n["metadata"].get("creationTimestamp")),
            ]
            for n in items
        ],
    )


def _node_ipam_table(kind: str, items: list[dict[str, Any]]) -> str:
    """CiliumNodes (the operator's IPAM, with its error) or node entries (the live agents)."""
    rows = []
    for n in items:
        spec = n.get("spec", {})
        ips = [a.get("ip", "") for a in spec.get("addresses", []) if isinstance(a, dict)]
        if kind == "ClusterNode":
            cidrs = ",".join(spec.get("podCIDRs", [])) or "<none>"
            health = (spec.get("health") or {}).get("ipv4") or "<none>"
            rows.append([n["metadata"]["name"], ",".join(ips) or "<none>", cidrs, health])
            continue
        ipam = spec.get("ipam", {})
        pools = [
            f"{e.get('pool')}={','.join(e.get('cidrs', []))}"
            for e in ipam.get("pools", {}).get("allocated", [])
            if isinstance(e, dict)
        ]
        error = n.get("status", {}).get("ipam", {}).get("operatorStatus", {}).get("error", "")
        rows.append(
            [
                n["metadata"]["name"],
                ",".join(ips) or "<none>",
                ",".join(ipam.get("podCIDRs", [])) or "<none>",
                " ".join(pools) or "<none>",
                error or "-",
            ]
        )
    if kind == "ClusterNode":
        return table(["NAME", "INTERNAL-IP", "POD-CIDRS", "HEALTH-IP"], rows)
    return table(["NAME", "INTERNAL-IP", "POD-CIDRS", "POOLS", "IPAM-ERROR"], rows)
