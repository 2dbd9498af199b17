"""The NodePort acceleration switch: agent flag, lab flag, status report."""

from __future__ import annotations

import pytest

from axoneme.agent.config import parse_args
from axoneme.agent.loadbalancer import report
from axoneme.lab.topology import LabConfig
from axoneme.loadbalancer.config import LBAgentConfig

BASE = ["--node", "n", "--store", "embedded:/x"]


def test_agent_flag_defaults_to_disabled_and_takes_both_spellings() -> None:
    assert parse_args(BASE).lb.acceleration == "disabled"
    assert parse_args([*BASE, "--nodeport-acceleration", "native"]).lb.acceleration == "native"
    assert parse_args([*BASE, "--node-port-acceleration=native"]).lb.acceleration == "native"


def test_agent_flag_rejects_other_modes_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args([*BASE, "--nodeport-acceleration", "generic"])
    assert "--nodeport-acceleration" in capsys.readouterr().err


def test_lab_config_validates_the_mode() -> None:
    LabConfig(nodeport_acceleration="native").validate()
    with pytest.raises(ValueError, match="--nodeport-acceleration: 'best-effort'"):
        LabConfig(nodeport_acceleration="best-effort").validate()


def test_status_reports_native_only_when_attached() -> None:
    config = LBAgentConfig(acceleration="native")
    assert report(config, None, node_port="Enabled", xdp="Native")["xdpAcceleration"] == "Native"
    assert report(config, None, "off")["xdpAcceleration"] == "Disabled"
