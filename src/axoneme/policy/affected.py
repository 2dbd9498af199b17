"""Which endpoints a change can affect (pure): the incremental half of regeneration.

An endpoint's resolved policy is a function of its own inputs (``EndpointRef``:
identity, labels, named ports), of the policies whose subject selects it, of
the identity sets the selector cache gives for those policies' selectables,
of the peers' named ports (egress rules with named ports only) and of the
agent's settings. So after a change only these endpoints need ``resolve``:

- endpoints whose own inputs changed (or that are new);
- endpoints selected by a policy that was added, changed or removed;
- endpoints selected by a policy one of whose selectables changed its set
  (an identity appeared, went, or was relabelled);
- if the peers' named ports changed: endpoints selected by a policy with an
  egress rule that names a port.

Anything else (settings, a resync) regenerates everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from axoneme.policy.selector import Selectable, matches, policy_selectables
from axoneme.policy.types import EndpointRef, Policy

K = TypeVar("K")


def changed_policies(
    old: Mapping[K, tuple[Policy, ...]], new: Mapping[K, tuple[Policy, ...]]
) -> list[Policy]:
    """The old and new versions of every policy resource that differs."""
    out: list[Policy] = []
    for key in old.keys() | new.keys():
        before, after = old.get(key, ()), new.get(key, ())
        if before != after:
            out += [*before, *after]
    return out


def uses_egress_named_ports(policy: Policy) -> bool:
    return any(
        rule.direction == "egress" and any(pp.name for pp in rule.ports) for rule in policy.rules
    )


def affected_policies(
    old: Mapping[K, tuple[Policy, ...]],
    new: Mapping[K, tuple[Policy, ...]],
    changed_selectables: frozenset[Selectable],
    named_ports_changed: bool,
) -> list[Policy]:
    affected = changed_policies(old, new)
    for policies in new.values():
        for policy in policies:
            if (changed_selectables and policy_selectables(policy) & changed_selectables) or (
                named_ports_changed and uses_egress_named_ports(policy)
            ):
                affected.append(policy)
    return affected


def stale_endpoints(
    refs: Mapping[int, EndpointRef],
    resolved: Mapping[int, EndpointRef],
    affected: Iterable[Policy],
) -> set[int]:
    """Endpoint ids to resolve again: new or changed inputs, or selected by an affected policy."""
    stale = {ep_id for ep_id, ref in refs.items() if resolved.get(ep_id) != ref}
    subjects = list({p.subject for p in affected})
    for ep_id, ref in refs.items():
        if ep_id not in stale and any(matches(subject, ref.labels) for subject in subjects):
            stale.add(ep_id)
    return stale
