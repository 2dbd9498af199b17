"""Run connectivity scenarios against the running lab.

1. Remove whatever an earlier run left in :data:`NAMESPACE`, then deploy the
   namespace, the workloads (clients and ``echo-same-node`` on the first
   node, ``echo-other-node`` on the second) and a Service per echo workload,
   and wait until every pod runs and every node's ipcache knows every pod by
   its identity (before that a policy would see a pod as ``world``), and
   (for a few seconds at most) until each Service's ClusterIP answers.
2. Per scenario: apply its policies and wait until every agent realized that
   revision; run its probes concurrently; compare each outcome with the
   expected set; delete its policies and wait again, so the next scenario
   starts from no policy.
3. Always (failure, Ctrl-C or SIGTERM included) remove the policies, pods
   and namespace again, unless ``keep`` asks to leave the workloads for a look.

The store, agents and probe engine are reached through the same library
functions the CLI's ``apply``, ``policy wait`` and ``probe`` use.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from axoneme.api.client import AgentAPIError, AgentClient, AgentUnavailableError
from axoneme.cli.context import AgentRef, CLIError, agents, open_store
from axoneme.cli.probe import run_probes
from axoneme.cli.resources import apply_objects
from axoneme.connectivity.report import ScenarioResult, Status, format_result
from axoneme.connectivity.scenarios import (
    ECHO_PORT,
    FEATURE_MISSING,
    NAMESPACE,
    NODEPORT,
    OTHER_NODE,
    SAME_NODE,
    SERVICES,
    WORKLOADS,
    Scenario,
    mismatches,
    probe_spec,
    workload_manifests,
)
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import validate
from axoneme.lab.control import LabError, require_state
from axoneme.lab.topology import BPF_PIN_ROOT
from axoneme.probe.spec import ProbeSpec
from axoneme.store.types import Key, StoreError

NAMESPACED_POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy")
POLL = 0.1
# How long deploy waits for the ClusterIPs to answer once the pods are ready: the
# agents program a Service within milliseconds; past this the service scenarios
# report what they see.
SERVICE_SETTLE = 10.0

Emit = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    probe_timeout: float = 2.0
    keep: bool = False
    fancy: bool = False
    ready_timeout: float = 90.0
    policy_timeout: float = 60.0


@dataclass(frozen=True)
class LabView:
    nodes: dict[str, str]  # SAME_NODE / OTHER_NODE -> lab node name
    refs: list[AgentRef]
    features: frozenset[str] = frozenset()  # what every node's datapath serves


def lab_view() -> LabView:
    try:
        state = require_state()
    except LabError as exc:
        raise CLIError(str(exc)) from exc
    names = [n["name"] for n in state["nodes"]]
    if len(names) < 2:
        raise CLIError(
            f"the connectivity test needs a lab with at least 2 nodes (this one has "
            f"{len(names)}: axoneme lab up --nodes 2)"
        )
    return LabView({SAME_NODE: names[0], OTHER_NODE: names[1]}, agents(None))


def features(refs: Sequence[AgentRef]) -> frozenset[str]:
    """The optional features every agent reports on (NodePort in its status)."""
    statuses = [_ask(ref, "/v1/status") or {} for ref in refs]
    nodeport = bool(statuses) and all(
        (s.get("kubeProxyReplacement") or {}).get("nodePort") == "Enabled" for s in statuses
    )
    return frozenset({NODEPORT} if nodeport else ())


# ---- store helpers -------------------------------------------------------------------


async def _apply(objects: Sequence[dict[str, Any]]) -> int:
    try:
        valid = [validate(copy.deepcopy(o)) for o in objects]
    except ValidationError as exc:
        raise CLIError(str(exc)) from exc
    _, revision = await apply_objects(valid)
    return revision


async def _delete(keys: Sequence[Key]) -> int:
    """Delete what exists of ``keys``; the highest revision written (0 if none)."""
    store = open_store()
    revision = 0
    try:
        for key in keys:
            rev = await store.delete(key)
            if rev is not None:
                revision = max(revision, rev)
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()
    return revision


async def _list(kind: str, namespace: str | None = NAMESPACE) -> list[dict[str, Any]]:
    store = open_store()
    try:
        return (await store.list(kind, namespace)).items
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()


def _ask(ref: AgentRef, path: str) -> Any:
    try:
        return AgentClient(ref.socket, timeout=5).get(path)
    except (AgentUnavailableError, AgentAPIError):
        return None


async def wait_realized(refs: Sequence[AgentRef], revision: int, timeout: float) -> None:
    """``axoneme policy wait REVISION``, cancellable: every agent runs ``revision``."""
    deadline = time.monotonic() + timeout
    while True:
        answers = await asyncio.gather(*(asyncio.to_thread(_ask, r, "/v1/policy") for r in refs))
        view = {
            ref.node: int(a["realizedRevision"]) if a else None
            for ref, a in zip(refs, answers, strict=True)
        }
        lagging = {n: v for n, v in view.items() if v is None or v < revision}
        if not lagging:
            return
        if time.monotonic() > deadline:
            where = ", ".join(
                f"{n} at {v if v is not None else 'unreachable'}" for n, v in lagging.items()
            )
            raise CLIError(
                f"timed out after {timeout:g}s waiting for policy revision {revision}: {where}"
            )
        await asyncio.sleep(POLL)


# ---- deploy and remove -----------------------------------------------------------------


def _ipcache_identity(node: str, ip: str) -> int | None:
    from axoneme.datapath.linux.maps import IPCacheMap

    try:
        with IPCacheMap.open(BPF_PIN_ROOT / node) as ipcache:
            value = ipcache.lookup(ip)
    except OSError:
        return None
    return value.identity if value is not None else None


def _readiness(pods: dict[str, dict[str, Any]], view: LabView) -> list[str]:
    """What is not ready yet: pods not running, identities not in every node's ipcache."""
    waiting: list[str] = []
    ips: dict[str, str] = {}
    for workload in WORKLOADS:
        pod = pods.get(workload.name)
        status = (pod or {}).get("status", {})
        if status.get("phase") != "Running" or not status.get("podIP"):
            reason = status.get("reason") or status.get("phase") or "not created"
            waiting.append(f"pod {workload.name}: {reason}")
        else:
            ips[workload.name] = status["podIP"]
    if waiting:
        return waiting
    identities: dict[str, int] = {}
    for ref in view.refs:
        for ep in _ask(ref, "/v1/endpoints") or []:
            if ep.get("namespace") == NAMESPACE and ep.get("identity") is not None:
                identities[ep["ipv4"]] = int(ep["identity"])
    for name, ip in ips.items():
        want = identities.get(ip)
        if want is None:
            waiting.append(f"pod {name}: no identity yet")
            continue
        for node in view.nodes.values():
            got = _ipcache_identity(node, ip)
            if got != want:
                waiting.append(f"pod {name}: ipcache on {node} has {got}, not {want}")
    return waiting


async def cluster_ips() -> dict[str, str]:
    """Service name -> ClusterIP, for the Services of :data:`SERVICES` that have one."""
    found = {}
    for svc in await _list("Service"):
        ip = svc.get("spec", {}).get("clusterIP")
        if ip and ip != "None":
            found[svc["metadata"]["name"]] = str(ip)
    return found


async def _services_answer(services: dict[str, str], options: Options) -> None:
    """Wait (at most :data:`SERVICE_SETTLE`) until the client reaches every ClusterIP."""
    specs = [ProbeSpec(f"{NAMESPACE}/client", ip, ECHO_PORT, "TCP") for ip in services.values()]
    deadline = time.monotonic() + SERVICE_SETTLE
    while specs and time.monotonic() < deadline:
        results = await run_probes(specs, min(options.probe_timeout, 1.0))
        if all(r.outcome == "reachable" for r in results):
            return
        await asyncio.sleep(POLL)


async def deploy(view: LabView, options: Options, emit: Emit) -> dict[str, str]:
    """Deploy the workloads and Services; the Services' ClusterIPs by name."""
    manifests = workload_manifests(view.nodes)
    started = time.monotonic()
    await _apply(manifests)
    deadline = started + options.ready_timeout
    while True:
        pods = {p["metadata"]["name"]: p for p in await _list("Pod")}
        waiting = await asyncio.to_thread(_readiness, pods, view)
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise CLIError(
                f"workloads not ready after {options.ready_timeout:g}s: " + "; ".join(waiting)
            )
        await asyncio.sleep(POLL)
    services = await cluster_ips()
    missing = [name for name, _ in SERVICES if name not in services]
    if missing:
        raise CLIError(f"Services without a ClusterIP: {', '.join(missing)}")
    await _services_answer(services, options)
    emit(f"Workloads ready in {time.monotonic() - started:.1f}s")
    return services


async def _policy_keys(namespace: str = NAMESPACE) -> list[Key]:
    keys: list[Key] = []
    for kind in NAMESPACED_POLICY_KINDS:
        keys += [Key.of(o) for o in await _list(kind, namespace)]
    return keys


async def remove(view: LabView, options: Options) -> None:
    """Delete the namespace's policies, pods and the namespace; wait until the agents
    have let go of the pods' endpoints."""
    revision = await _delete(await _policy_keys())
    if revision:
        await wait_realized(view.refs, revision, options.policy_timeout)
    # Services first: the lab's controller then removes their EndpointSlices.
    await _delete([Key.of(s) for s in await _list("Service")])
    await _delete([Key.of(p) for p in await _list("Pod")])
    await _delete([Key("Namespace", "", NAMESPACE)])
    deadline = time.monotonic() + options.ready_timeout
    while True:
        left = [
            ep
            for ref in view.refs
            for ep in (await asyncio.to_thread(_ask, ref, "/v1/endpoints") or [])
            if ep.get("namespace") == NAMESPACE
        ]
        if not left:
            return
        if time.monotonic() > deadline:
            raise CLIError(f"{len(left)} endpoint(s) of namespace {NAMESPACE} still present")
        await asyncio.sleep(POLL)


async def namespace_exists() -> bool:
    return any(n["metadata"]["name"] == NAMESPACE for n in await _list("Namespace", None))


# ---- scenarios -----------------------------------------------------------------------


async def run_scenario(
    scenario: Scenario,
    view: LabView,
    options: Options,
    services: dict[str, str] | None = None,
) -> ScenarioResult:
    if scenario.skip is not None:
        return ScenarioResult(scenario.name, "skip", problems=(scenario.skip,))
    lacking = sorted(scenario.requires - view.features)
    if lacking:
        return ScenarioResult(scenario.name, "skip", problems=(FEATURE_MISSING[lacking[0]],))
    started = time.monotonic()
    problems: list[str] = []
    keys = [Key.of(dict(p)) for p in scenario.policies]
    try:
        if scenario.policies:
            try:
                revision = await _apply([dict(p) for p in scenario.policies])
                await wait_realized(view.refs, revision, options.policy_timeout)
            except CLIError as exc:
                problems.append(f"applying its policies: {exc}")
        if not problems:
            specs = [probe_spec(p, view.nodes, services) for p in scenario.probes]
            results = await run_probes(specs, options.probe_timeout)
            details = [r.detail for r in results]
            outcomes = [r.outcome for r in results]
            problems += mismatches(scenario.probes, outcomes, details, view.nodes)
    except CLIError as exc:
        problems.append(str(exc))
    finally:
        if keys:
            try:
                revision = await _delete(keys)
                if revision:
                    await wait_realized(view.refs, revision, options.policy_timeout)
            except CLIError as exc:
                problems.append(f"removing its policies: {exc}")
    seconds = time.monotonic() - started
    status: Status = "fail" if problems else "pass"
    return ScenarioResult(scenario.name, status, len(scenario.probes), seconds, tuple(problems))


async def run(scenarios: Sequence[Scenario], options: Options, emit: Emit) -> list[ScenarioResult]:
    """Run ``scenarios`` in order, emitting each result line as it is known."""
    results: list[ScenarioResult] = []

    def record(result: ScenarioResult) -> None:
        results.append(result)
        emit(format_result(result, options.fancy))

    if all(s.skip is not None for s in scenarios):
        for scenario in scenarios:
            record(ScenarioResult(scenario.name, "skip", problems=(str(scenario.skip),)))
        return results
    view = lab_view()
    placed = ", ".join(f"{w.name} on {view.nodes[w.node]}" for w in WORKLOADS)
    emit(f"Connectivity test: {len(scenarios)} scenario(s) in namespace {NAMESPACE} ({placed})")
    completed = False
    try:
        if await namespace_exists():
            emit(f"Removing namespace {NAMESPACE} left by an earlier run")
            await remove(view, options)
        services = await deploy(view, options, emit)
        # Asked once the workloads run: an agent that just started may still be
        # bringing a feature up.
        view = dataclasses.replace(view, features=await asyncio.to_thread(features, view.refs))
        for scenario in scenarios:
            record(await run_scenario(scenario, view, options, services))
        completed = True
    finally:
        if options.keep:
            emit(f"Keeping namespace {NAMESPACE} and its workloads (--keep)")
        else:
            try:
                await remove(view, options)
                emit(f"Removed namespace {NAMESPACE}")
            except CLIError as exc:
                if completed:
                    raise CLIError(f"could not remove namespace {NAMESPACE}: {exc}") from exc
                # Already failing: say so, and let the first error be the one reported.
                emit(f"warning: could not remove namespace {NAMESPACE}: {exc}")
    return results


async def run_with_signals(
    scenarios: Sequence[Scenario], options: Options, emit: Emit
) -> list[ScenarioResult]:
    """:func:`run`, stopped by Ctrl-C or SIGTERM: cancel, clean up, then stop.

    The signal is remembered as well as delivered as a cancellation: Python
    3.11's TaskGroup can swallow a parent's cancellation that races a child's
    error, and a run that was told to stop must never report success.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if task is not None:
            task.cancel()

    def stopped() -> NoReturn:
        if received[0] == signal.SIGINT:
            raise KeyboardInterrupt
        what = "kept (--keep)" if options.keep else "removed"
        raise CLIError(f"terminated (SIGTERM); namespace {NAMESPACE} {what}") from None

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        results = await run(scenarios, options, emit)
    except asyncio.CancelledError:
        if received:
            stopped()
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if received:
        stopped()
    return results
