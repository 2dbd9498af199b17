"""The observer's ring: the last N raw events, decoded into flows only when asked.

Writing is a vectorised copy (the reader hands over whole batches), so
ingest costs the same whatever the rate; a flow is decoded once, on first
read, with the directory snapshot that was current when its batch arrived,
and the result is memoised for every other reader. Sequence numbers grow
forever: a reader holding sequence ``s`` knows it lost ``oldest - s`` flows
when the writer lapped it.
"""

from __future__ import annotations

import bisect

import numpy as np

from axoneme.datapath.events import EVENT_SIZE
from axoneme.observer.flow import EndpointResolver, Flow, FlowEndpoint, decode_row, rows

__all__ = ["FlowRing"]


class FlowRing:
    def __init__(self, capacity: int, node: str, mono_to_wall_ns: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.node = node
        self.mono_to_wall_ns = mono_to_wall_ns
        self._raw = np.zeros((capacity, EVENT_SIZE), np.uint8)
        self._flows: list[Flow | None] = [None] * capacity
        self.head = 0  # the next sequence number
        # (first sequence, resolver, its memo) per directory change, oldest first.
        self._resolvers: list[tuple[int, EndpointResolver, dict[int, FlowEndpoint]]] = [
            (0, EndpointResolver(), {})
        ]

    @property
    def oldest(self) -> int:
        return max(0, self.head - self.capacity)

    def __len__(self) -> int:
        return self.head - self.oldest

    def set_resolver(self, resolver: EndpointResolver) -> None:
        """Flows from the next batch on are resolved with ``resolver``."""
        if self._resolvers[-1][0] == self.head:
            self._resolvers[-1] = (self.head, resolver, {})
        else:
            self._resolvers.append((self.head, resolver, {}))
        while len(self._resolvers) > 1 and self._resolvers[1][0] <= self.oldest:
            del self._resolvers[0]

    def extend(self, records: np.ndarray) -> None:
        """Append (n, EVENT_SIZE) records; only the last ``capacity`` are kept."""
        n = records.shape[0]
        if n == 0:
            return
        if n > self.capacity:
            self.head += n - self.capacity
            records = records[-self.capacity :]
            n = self.capacity
        start = self.head % self.capacity
        first = min(n, self.capacity - start)
        self._raw[start : start + first] = records[:first]
        if first < n:
            self._raw[: n - first] = records[first:]
        self.head += n

    def _resolver(self, seq: int) -> tuple[EndpointResolver, dict[int, FlowEndpoint], int]:
        """The resolver for ``seq``, its memo, and the first sequence it no longer covers."""
        at = max(bisect.bisect_right(self._resolvers, seq, key=lambda item: item[0]) - 1, 0)
        upto = self._resolvers[at + 1][0] if at + 1 < len(self._resolvers) else 1 << 62
        return self._resolvers[at][1], self._resolvers[at][2], upto

    def flows(self, lo: int, hi: int) -> list[Flow]:
        """Flows with sequence numbers in [lo, hi), clamped to what is held."""
        lo, hi = max(lo, self.oldest), min(hi, self.head)
        out: list[Flow] = []
        seq = lo
        while seq < hi:
            # One contiguous, not yet decoded stretch at a time.
            slot = seq % self.capacity
            flow = self._flows[slot]
            if flow is not None and flow.seq == seq:
                out.append(flow)
                seq += 1
                continue
            end = min(hi, seq + (self.capacity - slot))
            resolver, memo, upto = self._resolver(seq)
            if len(memo) > 65536:
                memo.clear()  # world addresses could otherwise grow it without bound
            for i, row in enumerate(rows(self._raw[slot : slot + (end - seq)])):
                s = seq + i
                cached = self._flows[slot + i]
                if cached is not None and cached.seq == s:
                    out.append(cached)
                    continue
                if s >= upto:
                    resolver, memo, upto = self._resolver(s)
                made = decode_row(row, s, self.node, self.mono_to_wall_ns, resolver, memo)
                self._flows[slot + i] = made
                out.append(made)
            seq = end
        return out
