"""The node's frontends kept per service, so one service's change is recomputed alone (pure).

:func:`axoneme.loadbalancer.state.desired_frontends` over one service and its
own EndpointSlices gives that service's frontends; the table keeps them per
service and says, for each address, which service holds it: the first by
name, as ``desired_frontends`` over every service decides. A change returns
only the addresses whose frontend changed, for the writer's incremental path
(``LBWriter.apply``); :meth:`FrontendTable.frontends` is the full list for a
resync, equal (order aside) to ``desired_frontends`` over everything.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from axoneme.k8s.service import EndpointSlice, Service
from axoneme.loadbalancer.state import Frontend, LBConfig, desired_frontends

__all__ = ["FrontendTable", "slice_service"]

FrontendRef = Hashable  # a Frontend.key


def slice_service(s: EndpointSlice) -> str:
    """The service (namespace/name) a slice belongs to."""
    return f"{s.namespace}/{s.service}"


class FrontendTable:
    def __init__(self, config: LBConfig) -> None:
        self.config = config
        self._by_service: dict[str, dict[FrontendRef, Frontend]] = {}
        self._claims: dict[FrontendRef, set[str]] = {}  # address -> services wanting it
        self._chosen: dict[FrontendRef, Frontend] = {}

    def frontends(self) -> list[Frontend]:
        return list(self._chosen.values())

    def set_service(
        self, ref: str, svc: Service | None, slices: Iterable[EndpointSlice]
    ) -> dict[FrontendRef, Frontend | None]:
        """Service ``ref`` is now ``svc`` (None: gone) with these, its slices; the
        frontends that changed because of it (None: no longer served)."""
        new: dict[FrontendRef, Frontend] = {}
        if svc is not None:
            for fe in desired_frontends([svc], slices, self.config):
                new.setdefault(fe.key, fe)
        old = self._by_service.pop(ref, {})
        if new:
            self._by_service[ref] = new
        for key in old.keys() - new.keys():
            self._claims[key].discard(ref)
        for key in new:
            self._claims.setdefault(key, set()).add(ref)
        changes: dict[FrontendRef, Frontend | None] = {}
        for key in old.keys() | new.keys():
            claimants = self._claims[key]
            chosen = self._by_service[min(claimants)][key] if claimants else None
            if not claimants:
                del self._claims[key]
            before = self._chosen.get(key)
            if chosen is before:
                continue
            if chosen is None:
                del self._chosen[key]
            else:
                self._chosen[key] = chosen
            if chosen != before:
                changes[key] = chosen
        return changes

    def reset(self, services: Iterable[Service], slices: Iterable[EndpointSlice]) -> list[Frontend]:
        """Start over from every service (a resync); the full list of frontends."""
        by_service: dict[str, list[EndpointSlice]] = {}
        for s in slices:
            by_service.setdefault(slice_service(s), []).append(s)
        self._by_service, self._claims, self._chosen = {}, {}, {}
        for svc in services:
            self.set_service(svc.ref, svc, by_service.get(svc.ref, ()))
        return self.frontends()
