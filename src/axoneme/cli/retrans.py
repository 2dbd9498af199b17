"""``axoneme bpf retrans list``: TCP retransmissions per flow, as each node's agent counted them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from axoneme.api.client import AgentAPIError, AgentClient, AgentUnavailableError
from axoneme.cli.context import AgentRef
from axoneme.cli.output import table

__all__ = ["HEADERS", "flow_row", "retrans_list"]

HEADERS = ("SOURCE", "DESTINATION", "SEGMENTS", "LAST SEEN", "FIRST SEEN")


def _side(side: dict[str, Any]) -> str:
    where = f"{side['ip']}:{side['port']}"
    pod = side.get("pod") or ""
    return f"{side.get('namespace', '')}/{pod} ({where})" if pod else where


def flow_row(flow: dict[str, Any]) -> list[str]:
    """One API flow as a table row (pure)."""
    return [
        _side(flow["source"]),
        _side(flow["destination"]),
        str(flow["segments"]),
        f"{flow['lastSeenSecondsAgo']}s ago",
        f"{flow['firstSeenSecondsAgo']}s ago",
    ]


def render(node: str, flows: Sequence[dict[str, Any]]) -> str:
    body = table(HEADERS, [flow_row(f) for f in flows]) if flows else "(no retransmissions)"
    return f"# {node}\n{body}"


def retrans_list(refs: list[AgentRef]) -> tuple[str, bool]:
    """Every agent's flows, and whether every agent answered."""
    blocks, ok = [], True
    for ref in refs:
        try:
            flows = AgentClient(ref.socket, timeout=5).get("/v1/tcp-retransmits")
        except (AgentUnavailableError, AgentAPIError) as exc:
            ok = False
            blocks.append(f"# {ref.node}\n(unavailable: {exc})")
            continue
        blocks.append(render(ref.node, flows))
    return "\n\n".join(blocks), ok
