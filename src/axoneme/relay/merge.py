"""Merging nodes' flow streams in time order (pure).

History is merged whole (each node's answer is already in time order).
Live streams are merged through a short sorting window, as Hubble Relay
does: an item is released once it is older than the newest item seen minus
``window_ns`` or once the buffer holds ``max_items``; ``flush`` releases
everything (on a quiet stream, after the window has passed).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence

from axoneme.observer.proto import observer_pb2 as pb

__all__ = ["SortingBuffer", "merge_history", "response_time_ns"]


def response_time_ns(resp: pb.GetFlowsResponse) -> int:
    return int(resp.time.seconds) * 1_000_000_000 + int(resp.time.nanos)


def merge_history(streams: Sequence[Iterable[pb.GetFlowsResponse]]) -> list[pb.GetFlowsResponse]:
    """Each stream sorted by time -> one list sorted by time (stable across streams)."""
    return list(heapq.merge(*streams, key=response_time_ns))


class SortingBuffer:
    def __init__(self, window_ns: int = 100_000_000, max_items: int = 10_000) -> None:
        self.window_ns = window_ns
        self.max_items = max_items
        self._heap: list[tuple[int, int, pb.GetFlowsResponse]] = []
        self._order = itertools.count()
        self.newest = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, resp: pb.GetFlowsResponse) -> list[pb.GetFlowsResponse]:
        """Add one item; returns the items now due, oldest first."""
        t = response_time_ns(resp)
        self.newest = max(self.newest, t)
        heapq.heappush(self._heap, (t, next(self._order), resp))
        out = []
        while self._heap and (
            self._heap[0][0] <= self.newest - self.window_ns or len(self._heap) > self.max_items
        ):
            out.append(heapq.heappop(self._heap)[2])
        return out

    def flush(self) -> list[pb.GetFlowsResponse]:
        out = [item[2] for item in sorted(self._heap)]
        self._heap.clear()
        return out
