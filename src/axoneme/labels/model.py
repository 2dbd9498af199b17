"""The label value and label sets, shared by identity, policy and the CLI.

A label has a source (``k8s``, ``reserved``, ``cidr``, ``container``, ...), a key
and a value, and prints as Cilium prints it: ``k8s:app=web``,
``reserved:host``, ``cidr:10.0.0.0/8``. A selector key without a source
(``app``) matches that key from any source; ``k8s:app`` only from ``k8s``.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_K8S = "k8s"
SOURCE_RESERVED = "reserved"
SOURCE_CIDR = "cidr"
SOURCE_ANY = "any"

# Keys Cilium derives from the pod's context (cilium-semantics.md §1.1).
NAMESPACE_KEY = "io.kubernetes.pod.namespace"
NAMESPACE_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
SERVICE_ACCOUNT_KEY = "io.cilium.k8s.policy.serviceaccount"
CLUSTER_KEY = "io.cilium.k8s.policy.cluster"
POLICY_NAME_KEY = "io.cilium.k8s.policy.name"


@dataclass(frozen=True, order=True)
class Label:
    source: str
    key: str
    value: str = ""

    def __str__(self) -> str:
        if self.value or self.source == SOURCE_K8S:
            return f"{self.source}:{self.key}={self.value}"
        return f"{self.source}:{self.key}"

    @classmethod
    def parse(cls, text: str, default_source: str = SOURCE_ANY) -> Label:
        """``source:key=value``, ``key=value`` or ``source:key``; the source is
        the part before the first ``:`` only when it has no ``.`` or ``/``
        (label keys can contain neither in their source prefix)."""
        source = default_source
        head, sep, rest = text.partition(":")
        if sep and head and "." not in head and "/" not in head and "=" not in head:
            source, text = head, rest
        key, _, value = text.partition("=")
        return cls(source, key, value)


LabelSet = frozenset[Label]


def label_set(*labels: Label) -> LabelSet:
    return frozenset(labels)


def format_labels(labels: LabelSet) -> list[str]:
    """Sorted, one string per label, as ``identity list`` prints them."""
    return [str(label) for label in sorted(labels)]
