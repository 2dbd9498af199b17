"""Probe windows: latency, jitter and loss over the last N results."""

from __future__ import annotations

import pytest

from axoneme.health.window import ProbeWindow


def test_stats_over_answers_and_losses() -> None:
    w = ProbeWindow(5)
    for rtt in (0.001, None, 0.003, 0.002, None):
        w.add(rtt)
    s = w.stats()
    assert (s.sent, s.lost, s.last_ok, s.last_rtt) == (5, 2, False, None)
    assert s.loss_ratio == pytest.approx(0.4)
    assert s.latency == pytest.approx(0.002)
    # Consecutive answers 1ms, 3ms, 2ms: differences 2ms and 1ms.
    assert s.jitter == pytest.approx(0.0015)


def test_window_slides_so_old_losses_clear() -> None:
    w = ProbeWindow(3)
    for rtt in (None, None, None, 0.001, 0.001, 0.001):
        w.add(rtt)
    s = w.stats()
    assert s.lost == 0 and s.sent == 3 and s.last_ok and s.jitter == 0


def test_empty_and_all_lost_windows() -> None:
    assert ProbeWindow(2).stats().loss_ratio == 0.0
    w = ProbeWindow(2)
    w.add(None)
    s = w.stats()
    assert s.loss_ratio == 1.0 and s.latency is None and s.jitter is None


def test_window_size_is_checked() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ProbeWindow(1)
