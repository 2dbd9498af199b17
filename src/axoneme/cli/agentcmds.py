"""``axoneme status`` and ``axoneme endpoint list``: what the node agents report."""

from __future__ import annotations

from typing import Any

from axoneme.api.client import AgentAPIError, AgentClient, AgentUnavailableError
from axoneme.cli.context import AgentRef
from axoneme.cli.health import health_lines
from axoneme.cli.observe import hubble_line
from axoneme.cli.output import table
from axoneme.cli.services import kpr_lines
from axoneme.identity.reserved import HEALTH


def _ask(ref: AgentRef, path: str) -> Any:
    return AgentClient(ref.socket, timeout=5).get(path)


def status_text(refs: list[AgentRef], verbose: bool) -> tuple[str, bool]:
    """The status report, and whether every agent answered."""
    blocks, healthy = [], True
    for ref in refs:
        try:
            s = _ask(ref, "/v1/status")
        except (AgentUnavailableError, AgentAPIError) as exc:
            healthy = False
            blocks.append(f"Node:       {ref.node}\nAxoneme:    Failure   {exc}")
            continue
        lines = [
            f"Node:       {s['node']}",
            f"KVStore:    {s['store']}{_lease(s.get('nodeLease'))}",
            "Axoneme:    Ok",
            f"IPAM:       IPv4: {s['ipam']['summary']}",
            f"Endpoints:  {s['endpoints']['ready']}/{s['endpoints']['total']} ready",
            _policy_line(s.get("policy", {})),
            f"Routing:    {_routing(s)}",
            f"Uptime:     {s['uptimeSeconds']}s",
            hubble_line(ref.socket),
            *health_lines(s.get("health"), verbose),
            *kpr_lines(s.get("kubeProxyReplacement"), verbose),
        ]
        if verbose:
            lines.append(f"Router IP:  {s['routerIP']}")
            lines.append("Allocated addresses:")
            lines += [f"  {ip} ({owner})" for ip, owner in s["ipam"]["addresses"].items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks), healthy


def endpoint_rows(refs: list[AgentRef]) -> tuple[str, bool]:
    rows: list[list[str]] = []
    healthy = True
    for ref in refs:
        try:
            endpoints = _ask(ref, "/v1/endpoints")
        except (AgentUnavailableError, AgentAPIError) as exc:
            healthy = False
            rows.append([ref.node, "-", "-", "-", "-", f"(agent unavailable: {exc})", "-", "-"])
            continue
        for ep in endpoints:
            labels = _labels(ep)
            identity = str(ep["identity"]) if ep["identity"] is not None else "(pending)"
            first = labels[0] if labels else "(none)"
            enforcement = ep.get("policyEnforcement", {})
            rows.append(
                [
                    ref.node,
                    str(ep["id"]),
                    enforcement.get("ingress", "Disabled"),
                    enforcement.get("egress", "Disabled"),
                    identity,
                    first,
                    ep["ipv4"],
                    ep["state"],
                ]
            )
            rows += [["", "", "", "", "", extra, "", ""] for extra in labels[1:]]
    headers = [
        "NODE",
        "ENDPOINT",
        "POLICY (ingress)",
        "POLICY (egress)",
        "IDENTITY",
        "LABELS (source:key[=value])",
        "IPv4",
        "STATUS",
    ]
    return table(headers, rows), healthy


def _labels(ep: dict[str, Any]) -> list[str]:
    if ep["identity"] == HEALTH:
        return ["reserved:health"]  # the node's health endpoint, as Cilium lists it
    labels = [f"k8s:{k}={v}" for k, v in sorted(ep["labels"].items())]
    if ep["namespace"]:
        labels.append(f"k8s:io.kubernetes.pod.namespace={ep['namespace']}")
    if not labels:
        labels.append(f"container:{ep['containerId'][:12]}")
    return labels


def first_policy_status(refs: list[AgentRef]) -> dict[str, Any] | None:
    """The policy settings of the first agent that answers (they share one config)."""
    for ref in refs:
        try:
            status: dict[str, Any] = _ask(ref, "/v1/policy")
            return status
        except (AgentUnavailableError, AgentAPIError):
            continue
    return None


def _lease(report: dict[str, Any] | None) -> str:
    """The node lease after the store line: its entries live as long as it does."""
    if not report:
        return ""
    if not report.get("lease"):
        return "   (no node lease yet)"
    return (
        f"   (node lease {report['lease']}, TTL {report['ttlSeconds']}s, "
        f"{report['ownedEntries']} entries, renewed {report['renewedSecondsAgo']}s ago)"
    )


def _routing(status: dict[str, Any]) -> str:
    summary = (status.get("routing") or {}).get("summary")
    return str(summary) if summary else "(not configured yet)"


def _policy_line(p: dict[str, Any]) -> str:
    if not p.get("enabled"):
        return "Policy:     Disabled"
    audit = ", audit mode" if p.get("audit") else ""
    invalid = f", {len(p['invalidPolicies'])} invalid" if p.get("invalidPolicies") else ""
    return (
        f"Policy:     eBPF, enforcement {p.get('mode')}{audit}; {p.get('policies', 0)} "
        f"policies{invalid}, revision {p.get('realizedRevision')} realized, "
        f"{p.get('identities', 0)} identities"
    )
