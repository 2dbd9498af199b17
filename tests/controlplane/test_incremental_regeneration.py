"""Incremental regeneration: after each change only the affected endpoints are resolved
again, and the result always equals a full resolution from scratch."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from axoneme.agent.enforcement import RegenerationStats, allow_from_host, named_ports_of
from axoneme.endpoint.manager import PodInfo
from axoneme.identity.reserved import INIT
from axoneme.k8s.apply import new_object
from axoneme.k8s.objects import parse_namespace, parse_pod
from axoneme.policy.resolve import resolve
from axoneme.policy.selector import SelectorCache
from axoneme.policy.types import EndpointPolicy, EndpointRef
from axoneme.store.informer import run_cluster_informer
from axoneme.store.types import Key
from controlplane.test_enforcement import Cluster, pod


def web_policy(name: str, peer: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": "d"},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": peer}]}],
        },
    }


def from_scratch(c: Cluster) -> dict[int, EndpointPolicy]:
    """The oracle: every endpoint resolved with a fresh selector cache."""
    enf = c.enf
    cache = SelectorCache({**enf.identities.all(), **enf.cidr.identities()})
    ctx = enf._context()
    policies = [p for ps in enf.policies.values() for p in ps]
    out = {}
    for ep in c.manager.endpoints():
        if ep.identity is None:
            continue
        p = enf.pods.get((ep.namespace, ep.pod))
        ref = EndpointRef(
            ep.id, int(ep.identity or INIT), enf._ep_labels.get(ep.id, frozenset()),
            named_ports_of(p) if p else {},
        )  # fmt: skip
        out[ep.id] = allow_from_host(resolve(ref, policies, ctx, cache))
    return out


def normalized(results: dict[int, EndpointPolicy]) -> dict[int, EndpointPolicy]:
    return {i: replace(r, revision=0) for i, r in results.items()}


def test_only_affected_endpoints_are_resolved_and_results_match_a_full_pass(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        c = Cluster(tmp_path)
        await c.start()
        informer = asyncio.create_task(run_cluster_informer(c.store, c.enf.on_sync, c.enf.on_event))
        stats: list[RegenerationStats] = []
        c.enf.regeneration_observers.append(stats.append)

        async def settle(revision: int) -> RegenerationStats:
            for _ in range(500):  # the informer delivers within milliseconds
                if c.enf.seen_revision >= revision:
                    break
                await asyncio.sleep(0.01)
            assert c.enf.seen_revision >= revision, "the informer did not deliver"
            result = await c.enf.regenerate()
            assert normalized(c.enf.endpoint_policies) == normalized(from_scratch(c))
            return result

        async def add(name: str, labels: dict[str, str]) -> int:
            stored = await c.store.create(new_object(pod(name, labels)))
            p = parse_pod(stored)
            namespace = parse_namespace((await c.store.list("Namespace")).items[0])
            endpoint_labels = c.enf.labels_for(p, namespace)
            identity = await c.enf.allocate(endpoint_labels)
            ep = c.manager.add(
                f"c-{name}", "eth0", f"/run/netns/{name}",
                PodInfo(p.namespace, p.name, p.labels, identity),
            )  # fmt: skip
            await c.enf.endpoint_ready(ep, endpoint_labels)
            return ep.id

        try:
            for name, app in (("web", "web"), ("cli", "cli"), ("db", "db"), ("other", "x")):
                await add(name, {"app": app})
            revision = int((await c.store.list_all()).revision)
            await settle(revision)  # the informer's resync: everything once
            # A policy for web: only web is resolved again.
            written = await c.store.create(new_object(web_policy("web", {"app": "cli"})))
            after = await settle(int(written["metadata"]["resourceVersion"]))
            assert after.resolved == 1
            # A new identity the policy selects (a new cli replica with one more
            # label): web (its peers changed) and the new endpoint.
            await add("cli2", {"app": "cli", "tier": "x"})
            revision = int((await c.store.list_all()).revision)
            after = await settle(revision)
            assert after.resolved <= 2
            # A new identity nobody's policy selects: the new endpoint only.
            await add("lonely", {"app": "lonely"})
            after = await settle(int((await c.store.list_all()).revision))
            assert after.resolved <= 1
            # db relabelled into the selected set: web and db.
            obj = next(o for o in (await c.store.list("Pod", "d")).items
                       if o["metadata"]["name"] == "db")  # fmt: skip
            obj["metadata"]["labels"] = {"app": "cli"}
            written = await c.store.put(obj)
            await settle(int(written["metadata"]["resourceVersion"]))
            # Deleting the policy: web again; nothing else.
            await c.store.delete(Key("CiliumNetworkPolicy", "d", "web"))
            after = await settle(int((await c.store.list_all()).revision))
            assert after.resolved == 1
            total = len([e for e in c.manager.endpoints() if e.identity is not None])
            assert total == 6
        finally:
            informer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await informer

    asyncio.run(run())
