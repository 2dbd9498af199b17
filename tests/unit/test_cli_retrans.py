"""``axoneme bpf retrans list`` formatting, and an agent that cannot answer."""

from __future__ import annotations

from pathlib import Path

from axoneme.cli import retrans
from axoneme.cli.context import AgentRef

FLOW = {
    "source": {"ip": "10.0.1.5", "port": 40000, "namespace": "demo", "pod": "client"},
    "destination": {"ip": "192.0.2.1", "port": 80, "namespace": "", "pod": ""},
    "segments": 12,
    "firstSeenSecondsAgo": 3.5,
    "lastSeenSecondsAgo": 1.5,
}


def test_flow_row_names_pods_and_shows_bare_addresses() -> None:
    assert retrans.flow_row(FLOW) == [
        "demo/client (10.0.1.5:40000)",
        "192.0.2.1:80",
        "12",
        "1.5s ago",
        "3.5s ago",
    ]


def test_render_an_empty_node() -> None:
    assert retrans.render("node1", []) == "# node1\n(no retransmissions)"


def test_an_absent_agent_is_reported_and_fails(tmp_path: Path) -> None:
    text, ok = retrans.retrans_list([AgentRef("node9", tmp_path / "none.sock")])
    assert not ok
    assert text.startswith("# node9\n(unavailable: no agent listening")
