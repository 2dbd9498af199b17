"""The policy boundary: raw NetworkPolicy / CiliumNetworkPolicy /
CiliumClusterwideNetworkPolicy JSON in, frozen ``Policy`` values out.

``parse_policy`` validates the whole document against the real schema (unknown
fields are errors, named by path) and applies every default and the namespace
rules, so nothing downstream needs to know which kind a rule came from. The
kind-specific work lives in ``parse_k8s`` and ``parse_cilium``; the shared
pieces in ``parse_common``. Parts of a policy that are accepted but not
enforced yet are listed in ``Rule.not_enforced`` and, as sentences with the
field path, in ``Policy.warnings`` (``policy_warnings`` gathers them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from axoneme.k8s.errors import ValidationError
from axoneme.policy import parse_cilium, parse_k8s
from axoneme.policy.parse_common import meta
from axoneme.policy.types import Policy, PolicyKind

__all__ = ["KINDS", "parse_policy", "policy_key", "policy_warnings"]

# kind → (apiVersion, namespaced)
KINDS: dict[PolicyKind, tuple[str, bool]] = {
    "NetworkPolicy": (parse_k8s.API_VERSION, True),
    "CiliumNetworkPolicy": (parse_cilium.API_VERSION, True),
    "CiliumClusterwideNetworkPolicy": (parse_cilium.API_VERSION, False),
}
_PARSERS: dict[str, Callable[[dict[str, Any]], tuple[Policy, ...]]] = {
    "NetworkPolicy": parse_k8s.parse_network_policy,
    "CiliumNetworkPolicy": parse_cilium.parse_cilium_policy,
    "CiliumClusterwideNetworkPolicy": parse_cilium.parse_cilium_policy,
}


def _check_kind(raw: Any) -> PolicyKind:
    if not isinstance(raw, dict):
        raise ValidationError("(document)", "must be an object")
    kind = raw.get("kind")
    for known, (api_version, _) in KINDS.items():
        if kind == known:
            if raw.get("apiVersion") != api_version:
                raise ValidationError("apiVersion", f"must be {api_version!r} for kind {kind}")
            return known
    raise ValidationError("kind", f"{kind!r} is not a policy kind ({', '.join(KINDS)})")


def parse_policy(raw: dict[str, Any]) -> tuple[Policy, ...]:
    """Every rule set of one policy resource (one, or one per CNP ``specs`` item).
    Raises ``ValidationError`` naming the field path on any invalid input."""
    kind = _check_kind(raw)
    return _PARSERS[kind](raw)


def policy_key(raw: dict[str, Any]) -> tuple[str, str, str]:
    """``(kind, namespace, name)``; namespace ``""`` for the cluster-wide kind and
    ``default`` when a namespaced policy does not say. Checks only what it reads."""
    kind = _check_kind(raw)
    m = meta(raw, namespaced=KINDS[kind][1])
    return kind, m.namespace if KINDS[kind][1] else "", m.name


def policy_warnings(policies: Iterable[Policy]) -> tuple[str, ...]:
    """Every warning of the given policies, each prefixed with its policy's
    ``ref``, without duplicates (a metadata warning repeats in every ``specs``
    item; the others carry their ``specs[i]`` path)."""
    out: list[str] = []
    for policy in policies:
        for warning in policy.warnings:
            line = f"{policy.ref}: {warning}"
            if line not in out:
                out.append(line)
    return tuple(out)
