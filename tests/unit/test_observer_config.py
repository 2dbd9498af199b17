"""The observer's agent flags: defaults, and bad values refused naming the flag."""

from __future__ import annotations

import pytest

from axoneme.agent.config import parse_args

BASE = ["--node", "n1", "--store", "embedded:/tmp/x.json"]


def test_defaults_and_values() -> None:
    cfg = parse_args(BASE).observer
    assert cfg.capacity == 4095 and cfg.listen_address == "" and cfg.metrics_address == ""
    assert cfg.socket is None  # the agent puts it beside its own socket
    cfg = parse_args([*BASE, "--hubble-listen-address", ":4244",
                      "--prometheus-serve-addr", "172.30.0.11:9962",
                      "--hubble-event-buffer-capacity", "65535"]).observer  # fmt: skip
    assert (cfg.listen_address, cfg.metrics_address, cfg.capacity) == (
        ":4244", "172.30.0.11:9962", 65535,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hubble-event-buffer-capacity", "0"], "--hubble-event-buffer-capacity: 0"),
        (["--hubble-event-buffer-capacity", "70000"], "--hubble-event-buffer-capacity: 70000"),
        (["--hubble-listen-address", "4244"], "--hubble-listen-address: '4244' is not HOST:PORT"),
        (["--hubble-listen-address", "host:4244"], "--hubble-listen-address: 'host'"),
        (["--prometheus-serve-addr", ":0"], "--prometheus-serve-addr: ':0' is not HOST:PORT"),
    ],
)
def test_bad_flags(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        parse_args([*BASE, *flags])
    assert err.value.code == 2
    assert message in capsys.readouterr().err
