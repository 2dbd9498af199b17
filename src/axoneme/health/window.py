"""Sliding windows of probe results and what they say: latency, jitter, loss (pure)."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

__all__ = ["PathStats", "ProbeWindow"]


@dataclass(frozen=True)
class PathStats:
    """One probed path over the window. Times in seconds; None when nothing answered."""

    sent: int
    lost: int
    last_ok: bool
    last_rtt: float | None
    latency: float | None  # mean round-trip time of the answered probes
    jitter: float | None  # mean |rtt[i] - rtt[i-1]| over consecutive answers (RFC 3550's idea)

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.sent if self.sent else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "lost": self.lost,
            "lossRatio": round(self.loss_ratio, 4),
            "lastOk": self.last_ok,
            "lastRttSeconds": self.last_rtt,
            "latencySeconds": self.latency,
            "jitterSeconds": self.jitter,
        }


class ProbeWindow:
    """The last ``size`` results of one path: an RTT in seconds, or None for a loss."""

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError(f"window size must be at least 2, not {size}")
        self._results: deque[float | None] = deque(maxlen=size)

    def add(self, rtt: float | None) -> None:
        self._results.append(rtt)

    def __len__(self) -> int:
        return len(self._results)

    def stats(self) -> PathStats:
        results = list(self._results)
        answered = [r for r in results if r is not None]
        diffs = [abs(b - a) for a, b in itertools.pairwise(answered)]
        last = results[-1] if results else None
        return PathStats(
            sent=len(results),
            lost=len(results) - len(answered),
            last_ok=last is not None,
            last_rtt=last,
            latency=sum(answered) / len(answered) if answered else None,
            jitter=sum(diffs) / len(diffs) if diffs else None,
        )
