"""``axoneme policy import|get|delete|wait``: policies in the store, and waiting for agents.

A policy's revision is the store revision of its last change, so it means the
same thing on every node: ``policy wait REV`` returns once every agent reports
that all its endpoints run policy at least that new.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import yaml

from axoneme.api.client import AgentAPIError, AgentClient, AgentUnavailableError
from axoneme.cli.context import AgentRef, CLIError, open_store
from axoneme.cli.output import table
from axoneme.cli.resources import apply_objects, as_list, policy_warnings, read_manifest
from axoneme.store.types import Key, Resource, StoreError

POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
SHORT = {
    "NetworkPolicy": "netpol",
    "CiliumNetworkPolicy": "cnp",
    "CiliumClusterwideNetworkPolicy": "ccnp",
}


async def import_file(path: str) -> tuple[list[str], int]:
    objects = read_manifest(path)
    for index, obj in enumerate(objects):
        if obj["kind"] not in POLICY_KINDS:
            raise CLIError(
                f"{path} (object {index + 1}): kind: {obj['kind']} is not a policy "
                f"(use axoneme apply for other kinds)"
            )
    lines, revision = await apply_objects(objects)
    return lines + policy_warnings(objects), revision


async def list_policies(namespace: str | None) -> list[Resource]:
    store = open_store()
    try:
        items: list[Resource] = []
        for kind in POLICY_KINDS:
            scope = None if kind == "CiliumClusterwideNetworkPolicy" else namespace
            items += (await store.list(kind, scope)).items
        return items
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


def _rule_counts(obj: Resource) -> str:
    specs = obj.get("specs") or [obj.get("spec") or {}]
    counts: dict[str, int] = {}
    for spec in specs:
        for key in ("ingress", "egress", "ingressDeny", "egressDeny"):
            counts[key] = counts.get(key, 0) + len(spec.get(key) or [])
    return " ".join(f"{k}={v}" for k, v in counts.items() if v) or "-"


def render(items: list[Resource], output: str) -> str:
    if output == "json":
        return json.dumps(as_list(items), indent=2)
    if output == "yaml":
        return yaml.safe_dump(as_list(items), sort_keys=False).rstrip()
    if not items:
        return "No policies found."
    rows = [
        [
            SHORT[o["kind"]],
            o["metadata"].get("namespace", "") or "-",
            o["metadata"]["name"],
            _rule_counts(o),
            o["metadata"].get("resourceVersion", ""),
        ]
        for o in items
    ]
    return table(["KIND", "NAMESPACE", "NAME", "RULES", "REVISION"], rows)


async def delete(
    names: list[str], namespace: str, kind: str | None, delete_all: bool
) -> tuple[list[str], int]:
    items = await list_policies(None if delete_all else namespace)
    if delete_all:
        targets = items
    else:
        targets = [
            o
            for o in items
            if o["metadata"]["name"] in names
            and (kind is None or o["kind"] == kind or SHORT[o["kind"]] == kind)
            and o["metadata"].get("namespace", namespace) in (namespace, "")
        ]
        missing = set(names) - {o["metadata"]["name"] for o in targets}
        if missing:
            names_missing = ", ".join(sorted(missing))
            raise CLIError(f"policy not found in namespace {namespace}: {names_missing}")
    store = open_store()
    lines, revision = [], 0
    try:
        for obj in targets:
            rev = await store.delete(Key.of(obj))
            if rev is not None:
                revision = max(revision, rev)
                lines.append(f"{SHORT[obj['kind']]}/{obj['metadata']['name']} deleted")
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()
    return lines, revision


async def latest_revision() -> int:
    items = await list_policies(None)
    return max((int(o["metadata"]["resourceVersion"]) for o in items), default=0)


def _realized(ref: AgentRef) -> int | None:
    try:
        data: dict[str, Any] = AgentClient(ref.socket, timeout=5).get("/v1/policy")
    except (AgentUnavailableError, AgentAPIError):
        return None
    return int(data["realizedRevision"])


def wait(refs: list[AgentRef], revision: int, timeout: float) -> dict[str, int | None]:
    """Poll every agent until each reports ``revision``; returns the last view."""
    deadline = time.monotonic() + timeout
    while True:
        view = {ref.node: _realized(ref) for ref in refs}
        if all(v is not None and v >= revision for v in view.values()):
            return view
        if time.monotonic() > deadline:
            lagging = ", ".join(
                f"{n} at {v if v is not None else 'unreachable'}"
                for n, v in view.items()
                if v is None or v < revision
            )
            raise CLIError(
                f"timed out after {timeout:g}s waiting for revision {revision}: {lagging}"
            )
        time.sleep(0.05)


def run_wait(refs: list[AgentRef], revision: int | None, timeout: float) -> str:
    target = revision if revision is not None else asyncio.run(latest_revision())
    view = wait(refs, target, timeout)
    return f"revision {target} realized on {len(view)} node(s)"
