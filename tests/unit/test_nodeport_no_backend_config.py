"""--service-no-backend-response: the agent flag, the mode bits the datapath reads, status."""

from __future__ import annotations

import pytest

from axoneme.agent.config import parse_args
from axoneme.agent.loadbalancer import report
from axoneme.cli.services import kpr_lines
from axoneme.datapath.linux import hostlb
from axoneme.loadbalancer.config import LBAgentConfig

BASE = ["--node", "n", "--store", "embedded:/x"]


def test_flag_defaults_to_reject_as_cilium() -> None:
    assert parse_args(BASE).lb.no_backend_response == "reject"
    drop = parse_args([*BASE, "--service-no-backend-response", "drop"]).lb
    assert drop.no_backend_response == "drop"


def test_flag_rejects_other_values_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([*BASE, "--service-no-backend-response", "ignore"])
    assert "--service-no-backend-response" in capsys.readouterr().err


def test_mode_bits_match_nodeport_h() -> None:
    # lib/nodeport.h: LB_MODE_DSR (1 << 0), LB_MODE_NO_BACKEND_DROP (1 << 1); zero is
    # SNAT + reject, so a map an older agent wrote (0 or 1) keeps its meaning.
    assert hostlb.mode_bits(dsr=False, no_backend_drop=False) == 0
    assert hostlb.mode_bits(dsr=True, no_backend_drop=False) == 1
    assert hostlb.mode_bits(dsr=False, no_backend_drop=True) == 2
    assert hostlb.mode_bits(dsr=True, no_backend_drop=True) == 3


def test_status_verbose_shows_the_response_when_node_port_is_on() -> None:
    kpr = report(LBAgentConfig(), None, node_port="Enabled")
    assert "  No Backend Response:    Reject" in kpr_lines(kpr, verbose=True)
    kpr = report(LBAgentConfig(no_backend_response="drop"), None, node_port="Enabled")
    assert "  No Backend Response:    Drop" in kpr_lines(kpr, verbose=True)
    off = report(LBAgentConfig(), None, node_port="Disabled")
    assert "  No Backend Response:    -" in kpr_lines(off, verbose=True)
