"""The qperf matrix: every flow of :mod:`suite.flows` on every datapath, interleaved.

Each round builds every available datapath environment in turn (the order rotated from
round to round), runs each of its flows once (order rotated too) and takes it down
again; each row is the median over the rounds, and its ratio divides by the limit's
median for the same path (:func:`suite.flows.limit_flow`). A run that fails is retried
once in the same environment; what still fails is reported, never filled in.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from suite import labnet, plainnet, qperf
from suite.flows import DATAPATHS, FLOW_BY_NAME, LIMIT, Env, flows_for, limit_flow
from suite.qperf import METRICS
from suite.results import Failure, FamilyResult, Row, Unavailable, row

FAMILY = "datapath"
PROC_MARK = "AXB_BENCH=run"  # in every qperf's environment: how clean-up finds them

Say = Callable[[str], None]
Samples = dict[tuple[str, str, str], list[float]]


@dataclass(frozen=True)
class Settings:
    rounds: int
    seconds: int
    fillers: int  # other Services in front of ours in the kube-proxy rules
    datapaths: tuple[str, ...] = DATAPATHS


@dataclass(frozen=True)
class Environment:
    """How to bring one datapath up and down."""

    name: str
    up: Callable[[], Env]
    down: Callable[[], list[str]]


def _plain_down() -> list[str]:
    plainnet.teardown()
    left = plainnet.existing()
    return [f"namespaces left: {left}"] if left else []


def environment(datapath: str, fillers: int) -> Environment | str:
    """The environment for ``datapath``, or why this tree or machine cannot build it."""
    if datapath == LIMIT:
        return Environment(datapath, lambda: plainnet.env(kube_proxy=False), _plain_down)
    if datapath == "iptables-kube-proxy":
        if shutil.which(plainnet.IPTABLES_RESTORE) is None:
            return f"needs {plainnet.IPTABLES_RESTORE} (apt-get install iptables)"
        return Environment(
            datapath, lambda: plainnet.env(kube_proxy=True, fillers=fillers), _plain_down
        )
    if datapath in labnet.MODES:
        config = labnet.lab_config(datapath)
        if isinstance(config, str):
            return config
        return Environment(datapath, lambda: labnet.up(config), labnet.down)
    return f"unknown datapath {datapath!r}"


def rotated(items: Sequence[str], shift: int) -> list[str]:
    if not items:
        return []
    k = shift % len(items)
    return [*items[k:], *items[:k]]


def summarize(samples: Samples) -> list[Row]:
    """Rows from the samples, each with its ratio to the limit's same path."""
    rows = []
    for (datapath, flow, metric), values in sorted(samples.items()):
        base_flow = limit_flow(flow)
        base = samples.get((LIMIT, base_flow, metric))
        rows.append(
            row(
                FAMILY,
                flow,
                datapath,
                metric,
                METRICS[metric],
                values,
                base,
                f"{LIMIT} / {base_flow}",
            )
        )
    return rows


def run(settings: Settings, say: Say) -> FamilyResult:
    result = FamilyResult()
    envs: dict[str, Environment] = {}
    for name in settings.datapaths:
        env_or_reason = environment(name, settings.fillers)
        if isinstance(env_or_reason, str):
            result.unavailable.append(Unavailable(FAMILY, name, env_or_reason))
            say(f"  {name}: not available: {env_or_reason}")
        else:
            envs[name] = env_or_reason
    samples: Samples = {}
    missing: dict[tuple[str, str], str] = {}
    details: dict[str, str] = {}
    for rnd in range(settings.rounds):
        for name in rotated(list(envs), rnd):
            _one_environment(envs[name], rnd, settings, samples, missing, details, result, say)
    for (datapath, flow), reason in sorted(missing.items()):
        result.unavailable.append(Unavailable(FAMILY, f"{datapath} / {flow}", reason))
    result.rows = summarize(samples)
    result.notes += [f"{name}: {detail}" for name, detail in details.items()]
    return result


def _one_environment(
    environment: Environment,
    rnd: int,
    settings: Settings,
    samples: Samples,
    missing: dict[tuple[str, str], str],
    details: dict[str, str],
    result: FamilyResult,
    say: Say,
) -> None:
    name = environment.name
    tag = f"round {rnd + 1}/{settings.rounds} {name}"
    try:
        try:
            env = environment.up()
        except Exception as exc:  # one environment failing must not stop the others
            result.failures.append(Failure(FAMILY, f"{name} (round {rnd + 1})", f"setup: {exc}"))
            say(f"  {tag}: setup failed: {exc}")
            return
        details[name] = env.detail
        flows = {f.name: f for f in flows_for(name)}
        for flow_name in rotated(list(flows), rnd):
            flow = flows[flow_name]
            reason = env.unavailable(flow)
            if reason is not None:
                missing[(name, flow.name)] = reason
                continue
            values = _measure(env, name, flow_name, settings.seconds, result, tag, say)
            if values is None:
                continue
            for metric, value in values.items():
                samples.setdefault((name, flow.name, metric), []).append(value)
            shown = "  ".join(f"{m} {values[m]:.1f}" for m in METRICS if m in values)
            say(f"  {tag:34} {flow_name:32} {shown}")
    finally:
        for problem in environment.down():
            result.failures.append(Failure(FAMILY, f"{name} (round {rnd + 1})", problem))


def _measure(
    env: Env, datapath: str, flow_name: str, seconds: int, result: FamilyResult, tag: str, say: Say
) -> dict[str, float] | None:
    flow = FLOW_BY_NAME[flow_name]
    address = env.address(flow)
    assert address is not None
    marked = dict(os.environ)
    key, _, value = PROC_MARK.partition("=")
    marked[key] = value
    error = ""
    for attempt in (1, 2):
        try:
            values = qperf.measure(
                env.place(flow.server), env.place(flow.client), address, flow.ports, seconds, marked
            )
        except qperf.QperfError as exc:
            error = str(exc)
            if attempt == 1 and not isinstance(exc, qperf.Unreachable):
                # Under load on a shared machine qperf's message timeout can expire.
                say(f"  {tag} {flow_name}: {error}; retrying once")
                result.notes.append(f"{tag} {flow_name}: retried after: {error}")
                continue
            break  # an unreachable path, or the second failure
        missing = [m for m in METRICS if m not in values]
        if missing:
            # Some tests got nothing through while others worked (UDP dropped, TCP not):
            # the path's behaviour, not load; keep what was measured, report the rest.
            error = f"no result for {', '.join(missing)} (nothing got through)"
            result.failures.append(Failure(FAMILY, f"{datapath} / {flow_name}", error))
            say(f"  {tag} {flow_name}: {error}")
        return values
    result.failures.append(Failure(FAMILY, f"{datapath} / {flow_name}", error))
    say(f"  {tag} {flow_name}: failed: {error}")
    return None
