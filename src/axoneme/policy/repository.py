"""The policy repository: parsed policies by resource, with a revision.

Keyed by ``(kind, namespace, name)`` (namespace ``""`` for cluster-wide); one
key holds every ``Policy`` value of that resource (a CNP with ``specs`` gives
several, ordered by ``spec_index``). The revision starts at 0 and increases by
one on every ``put`` (add or replace, even with identical content) and every
``delete`` that removed something, like ``cilium-dbg policy get``'s
``Revision``. In-memory, no I/O, no clock; values in and out are frozen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from axoneme.policy.types import Policy

PolicyKey = tuple[str, str, str]  # (kind, namespace, name)


def policy_key(policy: Policy) -> PolicyKey:
    return (policy.kind, policy.namespace, policy.name)


class Repository:
    def __init__(self) -> None:
        self._by_key: dict[PolicyKey, tuple[Policy, ...]] = {}
        self._revision = 0

    @property
    def revision(self) -> int:
        return self._revision

    def put(self, policies: Sequence[Policy]) -> int:
        """Add or replace one resource's policies (all with the same key); returns
        the new revision."""
        if not policies:
            raise ValueError("put needs at least one policy (use delete to remove)")
        keys = {policy_key(p) for p in policies}
        if len(keys) != 1:
            raise ValueError(f"policies of one resource expected, got keys {sorted(keys)}")
        self._by_key[keys.pop()] = tuple(sorted(policies, key=lambda p: p.spec_index))
        self._revision += 1
        return self._revision

    def delete(self, key: PolicyKey) -> int | None:
        """Remove one resource; the new revision, or None if it was not there."""
        if key not in self._by_key:
            return None
        del self._by_key[key]
        self._revision += 1
        return self._revision

    def get(self, key: PolicyKey) -> tuple[Policy, ...] | None:
        return self._by_key.get(key)

    def keys(self) -> tuple[PolicyKey, ...]:
        return tuple(sorted(self._by_key))

    def policies(self) -> tuple[Policy, ...]:
        """Every policy, ordered by key then spec index (deterministic)."""
        return tuple(p for key in sorted(self._by_key) for p in self._by_key[key])

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[PolicyKey]:
        return iter(self.keys())
