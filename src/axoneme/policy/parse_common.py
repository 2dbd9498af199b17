"""Building blocks the policy parsers share: strict objects, selectors, ports, CIDRs, metadata.

Every helper takes the field path of the value it checks and raises
``ValidationError(path, message)`` naming the innermost offending field, so a
caller never sees a KeyError or TypeError from a malformed document.
Selectors come out canonical (requirements deduplicated and sorted), so two
spellings of the same selector compare equal downstream.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.names import dns_label, dns_subdomain, label_map, port_name
from axoneme.labels.model import (
    NAMESPACE_KEY,
    NAMESPACE_LABEL_PREFIX,
    SOURCE_ANY,
    SOURCE_K8S,
    SOURCE_RESERVED,
)
from axoneme.policy.types import CIDRPeer, Operator, Requirement, Selector

Raw = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_NAMESPACE = "default"
OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")
# Label sources a Cilium selector key may name (cilium-semantics.md §1.1).
SOURCES = frozenset(
    {"k8s", "container", "reserved", "unspec", "any", "cidr", "fqdn", "node", "cni", "directory"}
)

# The requirement namespace defaulting adds (Cilium's ``podPrefixLbl``).
NAMESPACE_K8S_KEY = f"{SOURCE_K8S}:{NAMESPACE_KEY}"
NAMESPACE_EXISTS = Requirement(NAMESPACE_K8S_KEY, "Exists")


def namespace_is(namespace: str) -> Requirement:
    return Requirement(NAMESPACE_K8S_KEY, "In", frozenset({namespace}))


# ---- plain JSON shapes ------------------------------------------------------


def at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def obj(path: str, value: Any) -> Raw:
    """An object; ``null`` counts as the empty object (a YAML ``- `` item)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(path, f"must be an object, not {_kind(value)}")
    return value


def lst(path: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(path, f"must be a list, not {_kind(value)}")
    return value


def string(path: str, value: Any, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ValidationError(path, "required string" if required else "must be a string")
    return value


def boolean(path: str, value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(path, f"must be true or false, not {value!r}")
    return value


def strict(
    path: str,
    raw: Raw,
    allowed: Collection[str],
    unsupported: Mapping[str, str] | None = None,
) -> None:
    """Reject fields the schema does not have, and real fields Axoneme does not
    implement (``unsupported``: field → why), each by its own path."""
    for key in raw:
        if unsupported and key in unsupported and raw[key] not in (None, "", [], {}):
            raise ValidationError(at(path, str(key)), f"not supported: {unsupported[key]}")
        if key not in allowed and not (unsupported and key in unsupported):
            known = ", ".join(sorted(allowed))
            raise ValidationError(at(path, str(key)), f"unknown field (expected one of: {known})")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


# ---- metadata ---------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    namespace: str
    name: str
    uid: str
    warnings: tuple[str, ...] = ()


def expect_kind(raw: Raw, kind: str, api_version: str) -> None:
    if raw.get("apiVersion") != api_version:
        raise ValidationError("apiVersion", f"must be {api_version!r} for kind {kind}")
    if raw.get("kind") != kind:
        raise ValidationError("kind", f"must be {kind!r}")


def meta(raw: Raw, *, namespaced: bool) -> Meta:
    """Name (DNS-1123 subdomain), namespace (defaulted to ``default`` for the
    namespaced kinds; ignored with a warning for the cluster-scoped one), uid."""
    m = obj("metadata", raw.get("metadata"))
    if m.get("name") is None:
        raise ValidationError("metadata.name", "required")
    name = dns_subdomain("metadata.name", m["name"])
    uid = string("metadata.uid", m.get("uid"))
    label_map("metadata.labels", m.get("labels"))
    if namespaced:
        namespace = dns_label("metadata.namespace", m.get("namespace", DEFAULT_NAMESPACE))
        return Meta(namespace, name, uid)
    if m.get("namespace"):
        note = "metadata.namespace: ignored, the kind is cluster-scoped"
        return Meta("", name, uid, (note,))
    return Meta("", name, uid)


# ---- selectors --------------------------------------------------------------


def split_source(key: str) -> tuple[str, str]:
    """``k8s:app`` → (``k8s``, ``app``); ``app`` → (``""``, ``app``). Same rule as
    ``Label.parse``: the part before the first ``:`` is a source only when it has
    no ``.``, ``/`` or ``=``."""
    head, sep, rest = key.partition(":")
    if sep and head and not any(c in head for c in "./="):
        return head, rest
    return "", key


def _check_label(path: str, bare_key: str, value: str | None) -> None:
    """One label key (and value) with the Kubernetes syntax; errors keep ``path``."""
    try:
        label_map(path, {bare_key: value if value is not None else ""})
    except ValidationError as exc:
        raise ValidationError(path, exc.message) from None


def _selector_key(path: str, key: Any, *, sources: bool) -> str:
    if not isinstance(key, str) or not key:
        raise ValidationError(path, f"label key {key!r} must be a non-empty string")
    if not sources:
        _check_label(path, key, None)
        return key
    source, bare = split_source(key)
    if source and source not in SOURCES:
        raise ValidationError(
            path, f"unknown label source {source!r} (one of: {', '.join(sorted(SOURCES))})"
        )
    _check_label(path, bare, None)
    return key


def selector(path: str, value: Any, *, sources: bool, prefix: str = "") -> list[Requirement]:
    """A ``LabelSelector`` (matchLabels ANDed with matchExpressions) as requirements.

    ``sources``: keys may carry a Cilium source (``k8s:app``), kept as given.
    ``prefix`` is put before every key (``k8s:`` for NetworkPolicy selectors,
    ``k8s:io.cilium.k8s.namespace.labels.`` for a namespaceSelector)."""
    raw = obj(path, value)
    strict(path, raw, ("matchLabels", "matchExpressions"))
    reqs: list[Requirement] = []
    labels = obj(at(path, "matchLabels"), raw.get("matchLabels"))
    for key, val in labels.items():
        where = f"{path}.matchLabels[{key!r}]"
        checked = _selector_key(where, key, sources=sources)
        if val is None:
            val = ""
        if not isinstance(val, str):
            raise ValidationError(where, f"label value must be a string, not {val!r}")
        _check_label(where, split_source(checked)[1] if sources else checked, val)
        reqs.append(Requirement(prefix + checked, "In", frozenset({val})))
    for i, item in enumerate(lst(at(path, "matchExpressions"), raw.get("matchExpressions"))):
        reqs.append(_expression(f"{path}.matchExpressions[{i}]", item, sources, prefix))
    return reqs


def _expression(path: str, value: Any, sources: bool, prefix: str) -> Requirement:
    raw = obj(path, value)
    strict(path, raw, ("key", "operator", "values"))
    if raw.get("key") is None:
        raise ValidationError(at(path, "key"), "required")
    key = _selector_key(at(path, "key"), raw["key"], sources=sources)
    op = raw.get("operator")
    if op not in OPERATORS:
        raise ValidationError(at(path, "operator"), f"{op!r} is not one of {', '.join(OPERATORS)}")
    values = lst(at(path, "values"), raw.get("values"))
    if op in ("In", "NotIn") and not values:
        raise ValidationError(at(path, "values"), f"must be non-empty for operator {op}")
    if op in ("Exists", "DoesNotExist") and values:
        raise ValidationError(at(path, "values"), f"must be empty for operator {op}")
    bare = split_source(key)[1] if sources else key
    for j, v in enumerate(values):
        if not isinstance(v, str):
            raise ValidationError(f"{path}.values[{j}]", f"must be a string, not {v!r}")
        _check_label(f"{path}.values[{j}]", bare, v)
    return Requirement(prefix + key, op, frozenset(values))


def canonical(reqs: Iterable[Requirement]) -> Selector:
    """Deduplicated and sorted, so equal selectors are equal values."""
    unique = set(reqs)
    return Selector(tuple(sorted(unique, key=lambda r: (r.key, r.operator, sorted(r.values)))))


def bare_key(key: str) -> str:
    return split_source(key)[1]


def is_namespace_key(key: str) -> bool:
    """``io.kubernetes.pod.namespace`` with any source."""
    return bare_key(key) == NAMESPACE_KEY


def is_namespace_labels_key(key: str) -> bool:
    source, bare = split_source(key)
    return source in ("", SOURCE_ANY, SOURCE_K8S) and bare.startswith(NAMESPACE_LABEL_PREFIX)


def is_reserved_key(key: str) -> bool:
    return split_source(key)[0] == SOURCE_RESERVED


# ---- ports and CIDRs --------------------------------------------------------


def named_port(path: str, value: str) -> str:
    """A named port, IANA_SVC_NAME; Cilium compares names case-insensitively."""
    return port_name(path, value.lower())


def network(path: str, value: Any, *, bare_ip: bool = False) -> Network:
    """A prefix (host bits are masked, as Go's ``ParseCIDR`` does); a bare
    address is a /32 or /128 only where the schema allows it."""
    if not isinstance(value, str) or not value:
        raise ValidationError(path, "required CIDR string")
    if "/" not in value and not bare_ip:
        raise ValidationError(path, f"{value!r} is not a CIDR (address/prefix-length)")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValidationError(path, f"{value!r} is not a CIDR: {exc}") from None


def cidr_peer(
    path: str, cidr: Any, excepts: Any, *, strict_subset: bool, match_pods: bool
) -> CIDRPeer:
    """``{cidr, except}``: every exception must lie inside ``cidr``
    (strictly for a Kubernetes ipBlock, as the API server checks)."""
    net = network(at(path, "cidr"), cidr)
    out: list[str] = []
    for i, item in enumerate(lst(at(path, "except"), excepts)):
        where = f"{path}.except[{i}]"
        sub = network(where, item)
        inside = sub.version == net.version and sub.subnet_of(net)  # type: ignore[arg-type]
        if not inside or (strict_subset and sub.prefixlen == net.prefixlen):
            kind = "a strict subset of" if strict_subset else "inside"
            raise ValidationError(where, f"{item!r} must be {kind} cidr {str(net)!r}")
        out.append(str(sub))
    return CIDRPeer(str(net), tuple(out), match_pods)
