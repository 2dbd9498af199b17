"""The agent's health flags: defaults, and bad values refused naming the flag."""

from __future__ import annotations

import pytest

from axoneme.agent.config import parse_args

BASE = ["--node", "n1", "--store", "embedded:/tmp/x.json"]


def test_health_is_off_by_default_and_flags_set_it() -> None:
    assert not parse_args(BASE).health.enabled
    h = parse_args(
        [*BASE, "--enable-health-checking", "--health-netns", "axn-n1-health",
         "--health-interval", "0.5", "--health-window", "20",
         "--health-loss-threshold", "0.1", "--health-jitter-threshold", "0.005"]
    ).health  # fmt: skip
    assert (h.enabled, h.netns, h.interval, h.window) == (True, "axn-n1-health", 0.5, 20)
    assert (h.loss_threshold, h.jitter_threshold) == (0.1, 0.005)


@pytest.mark.parametrize(
    ("flag", "bad"),
    [
        ("--health-netns", "../x"),
        ("--health-interval", "0"),
        ("--health-window", "1"),
        ("--health-loss-threshold", "1.5"),
        ("--health-jitter-threshold", "-1"),
    ],
)
def test_bad_health_flags_name_the_flag(
    flag: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args([*BASE, flag, bad])
    assert f"{flag}: " in capsys.readouterr().err
