"""NodePort switches: acceleration and DSR mode (agent flags, lab flags, status report)."""

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


def test_lb_mode_flag_and_status() -> None:
    assert parse_args(BASE).lb.mode == "snat"
    config = parse_args([*BASE, "--bpf-lb-mode", "dsr"]).lb
    assert config.mode == "dsr"
    assert report(config, None, node_port="Enabled")["dsr"] == "Enabled"
    assert report(config, None, node_port="Disabled")["dsr"] == "Disabled"  # no NodePort, no DSR
    with pytest.raises(ValueError, match="--bpf-lb-mode: 'hybrid'"):
        LabConfig(lb_mode="hybrid").validate()


def test_lab_no_backend_response_reaches_the_agents_and_is_validated() -> None:
    from axoneme.lab.supervisor import agent_args
    from axoneme.lab.topology import node_plans

    for value in ("drop", "reject"):
        config = LabConfig(no_backend_response=value)
        argv = agent_args(node_plans(config)[0], config)
        assert argv[argv.index("--service-no-backend-response") + 1] == value
    with pytest.raises(ValueError, match="--service-no-backend-response: 'icmp'"):
        LabConfig(no_backend_response="icmp").validate()


def test_lab_config_travels_to_the_supervisor_whole() -> None:
    config = LabConfig(nodes=3, routing_mode="native", lb_mode="dsr", no_backend_response="drop")
    assert LabConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="--routing-mode"):
        LabConfig.from_json(LabConfig(routing_mode="geneve").to_json())
