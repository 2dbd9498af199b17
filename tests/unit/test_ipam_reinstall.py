"""The reference document's trap: re-installing with another pod CIDR over leftovers.

The agent must refuse with a message naming what to clean (its state file),
not crash or silently renumber pods that still hold addresses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axoneme.datapath.fake import FakeDriver
from axoneme.endpoint.manager import EndpointManager
from axoneme.ipam.hostscope import CIDRMismatchError


def test_leftover_state_for_another_cidr_names_the_file_to_remove(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "ipam": {"cidr": "10.0.1.0/24", "next": 3, "allocations": {"10.0.1.2": "c1/eth0"}},
                "endpoints": [],
            }
        )
    )
    before = state.read_text()
    with pytest.raises(CIDRMismatchError) as err:
        EndpointManager(state, "10.42.1.0/24", FakeDriver())
    text = str(err.value)
    assert "allocator not configured for the requested cidr" in text
    assert f"remove {state}" in text
    assert "10.0.1.0/24" in text and "10.42.1.0/24" in text
    assert "1 address(es) are still allocated" in text
    assert state.read_text() == before  # refused: nothing changed


def test_leftover_state_without_addresses_is_taken_over(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"ipam": {"cidr": "10.0.1.0/24", "allocations": {}}}))
    manager = EndpointManager(state, "10.42.1.0/24", FakeDriver())
    assert manager.ipam.usage().cidr == "10.42.1.0/24"
