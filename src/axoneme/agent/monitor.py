"""Fan-out of datapath events to ``axoneme monitor`` subscribers.

The ring-buffer reader publishes from its thread through the loop; each
subscriber has a bounded queue, and a slow subscriber loses events (counted)
rather than slowing the reader: the datapath never waits for user space.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Subscription:
    queue: asyncio.Queue[dict[str, Any]]
    lost: int = 0


@dataclass
class EventHub:
    capacity: int = 4096
    _by_id: dict[int, Subscription] = field(default_factory=dict)
    published: int = 0

    def publish(self, event: dict[str, Any]) -> None:
        self.published += 1
        for sub in self._by_id.values():
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lost += 1

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        sub = Subscription(asyncio.Queue(self.capacity))
        key = id(sub)
        self._by_id[key] = sub
        try:
            while True:
                event = await sub.queue.get()
                if sub.lost:
                    yield {"type": "LOST", "count": sub.lost}
                    sub.lost = 0
                yield event
        finally:
            del self._by_id[key]

    @property
    def subscribers(self) -> int:
        return len(self._by_id)
