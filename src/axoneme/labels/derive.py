"""Which labels an endpoint has, and which of them make up its identity (pure).

``pod_labels`` builds every label Cilium gives a pod (cilium-semantics.md §1.1):
the pod's own labels plus the derived ``k8s:`` labels for its namespace, the
namespace's labels, its service account and the cluster name. Derived labels
always win over a pod label with the same key, and pod labels under
``io.cilium.k8s`` are dropped, so a pod cannot claim another namespace's
labels (Cilium's ``SanitizePodLabels``).

``endpoint_labels`` then keeps only the identity-relevant ones (§1.2) through a
``LabelFilter``. The filter works as Cilium's ``labelsfilter``: each pattern
is ``[source:][!]regex``, the regex anchored at the start of the label key; a
``!`` pattern excludes, any other pattern includes. A label is kept when no
exclusive pattern matches it and no user inclusive pattern is configured, or
when the longest match of an inclusive pattern is longer than the shortest
match of an exclusive one (so ``io.kubernetes.pod.namespace`` beats
``!io.kubernetes``). Once the user adds any inclusive pattern, only labels an
inclusive pattern matches are kept; the built-in inclusive patterns
(``reserved:.*``, the namespace, namespace labels, ``app.kubernetes.io``, the
cluster) still apply. The service-account label is kept by default (no default
pattern excludes it) but, as in Cilium, not once user inclusive patterns are
configured unless one of them matches it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from axoneme.k8s.objects import Namespace, Pod
from axoneme.labels.model import (
    CLUSTER_KEY,
    NAMESPACE_KEY,
    NAMESPACE_LABEL_PREFIX,
    SERVICE_ACCOUNT_KEY,
    SOURCE_CIDR,
    SOURCE_K8S,
    SOURCE_RESERVED,
    Label,
    LabelSet,
)

DEFAULT_CLUSTER = "default"
# Kubernetes sets this label on every namespace (1.21+).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Pod labels under this prefix are Cilium's to set, never the pod's.
CILIUM_K8S_PREFIX = "io.cilium.k8s"

# Cilium's default label patterns (pkg/labelsfilter, cilium-semantics.md §1.2).
DEFAULT_LABEL_PATTERNS: tuple[str, ...] = (
    "reserved:.*",
    re.escape(NAMESPACE_KEY),
    re.escape(NAMESPACE_LABEL_PREFIX.rstrip(".")),
    re.escape("app.kubernetes.io"),
    re.escape(CLUSTER_KEY),
    r"!io\.kubernetes",
    r"!kubernetes\.io",
    "!" + re.escape("statefulset.kubernetes.io/pod-name"),
    "!" + re.escape("apps.kubernetes.io/pod-index"),
    "!" + re.escape("batch.kubernetes.io/job-completion-index"),
    "!" + re.escape("batch.kubernetes.io/controller-uid"),
    "!" + re.escape("controller-uid"),
    r"!.*beta\.kubernetes\.io",
    r"!k8s\.io",
    "!pod-template-generation",
    "!pod-template-hash",
    "!controller-revision-hash",
    "!annotation.*",
    "!etcd_node",
)


@dataclass(frozen=True)
class LabelPattern:
    """One filter pattern: ``[source:][!]regex``; an empty source matches any source."""

    source: str
    regex: str
    exclude: bool

    @classmethod
    def parse(cls, text: str) -> LabelPattern:
        source, sep, rest = text.partition(":")
        if not sep:
            source, rest = "", text
        exclude = rest.startswith("!")
        if exclude:
            rest = rest[1:]
        if not rest:
            raise ValueError(f"label pattern {text!r}: empty pattern")
        try:
            re.compile(rest)
        except re.error as exc:
            raise ValueError(f"label pattern {text!r}: {exc}") from exc
        return cls(source, rest, exclude)

    def match_length(self, label: Label) -> int | None:
        """How much of the key the pattern matches from its start, or None."""
        if self.source and self.source != label.source:
            return None
        m = re.match(self.regex, label.key)
        return m.end() if m else None

    def __str__(self) -> str:
        return f"{'!' if self.exclude else ''}{self.source}:{self.regex}"


@dataclass(frozen=True)
class LabelFilter:
    patterns: tuple[LabelPattern, ...]
    # True once the user configured an inclusive pattern: then a label must
    # match an inclusive pattern to count.
    inclusive_only: bool = False

    @classmethod
    def from_patterns(cls, user_patterns: Iterable[str] = ()) -> LabelFilter:
        """The defaults plus the user's patterns (Cilium's ``--labels``), which add to them."""
        user = [LabelPattern.parse(p) for p in user_patterns if p]
        defaults = [LabelPattern.parse(p) for p in DEFAULT_LABEL_PATTERNS]
        return cls(tuple(defaults + user), any(not p.exclude for p in user))

    def relevant(self, label: Label) -> bool:
        included, ignored = 0, 0
        for pattern in self.patterns:
            length = pattern.match_length(label)
            if length is None:
                continue
            if pattern.exclude:
                if ignored == 0 or length < ignored:
                    ignored = length
            elif length > included:
                included = length
        return (not self.inclusive_only and ignored == 0) or included > ignored

    def split(self, labels: Iterable[Label]) -> tuple[LabelSet, LabelSet]:
        """(identity-relevant labels, the others)."""
        keep: list[Label] = []
        drop: list[Label] = []
        for label in labels:
            (keep if self.relevant(label) else drop).append(label)
        return frozenset(keep), frozenset(drop)

    def filter(self, labels: Iterable[Label]) -> LabelSet:
        return self.split(labels)[0]


DEFAULT_LABEL_FILTER = LabelFilter.from_patterns()


def pod_labels(pod: Pod, namespace: Namespace | None, cluster: str = DEFAULT_CLUSTER) -> LabelSet:
    """Every ``k8s:`` label of the pod's endpoint, before identity filtering."""
    values: dict[str, str] = {
        k: v for k, v in pod.labels.items() if not k.startswith(CILIUM_K8S_PREFIX)
    }
    ns_labels: Mapping[str, str] = namespace.labels if namespace is not None else {}
    for key, value in {**ns_labels, NAMESPACE_NAME_LABEL: pod.namespace}.items():
        values[NAMESPACE_LABEL_PREFIX + key] = value
    values[NAMESPACE_KEY] = pod.namespace
    if pod.service_account:
        values[SERVICE_ACCOUNT_KEY] = pod.service_account
    values[CLUSTER_KEY] = cluster
    return frozenset(Label(SOURCE_K8S, k, v) for k, v in values.items())


def endpoint_labels(
    pod: Pod,
    namespace: Namespace | None,
    cluster: str = DEFAULT_CLUSTER,
    *,
    label_filter: LabelFilter = DEFAULT_LABEL_FILTER,
) -> LabelSet:
    """The identity-relevant labels of the pod's endpoint."""
    return label_filter.filter(pod_labels(pod, namespace, cluster))


def reserved(name: str) -> LabelSet:
    """``reserved:<name>`` alone: the label set of a reserved identity."""
    return frozenset({Label(SOURCE_RESERVED, name)})


HOST_LABELS = reserved("host")
WORLD_LABELS = reserved("world")
REMOTE_NODE_LABELS = reserved("remote-node")
HEALTH_LABELS = reserved("health")
INIT_LABELS = reserved("init")
UNMANAGED_LABELS = reserved("unmanaged")
KUBE_APISERVER_LABELS = reserved("kube-apiserver")
INGRESS_LABELS = reserved("ingress")


def normalize_prefix(prefix: str) -> str:
    """``10.0.0.1`` → ``10.0.0.1/32``; ``10.1.2.3/8`` → ``10.0.0.0/8``; ValueError if not an IP."""
    return str(ipaddress.ip_network(prefix.strip(), strict=False))


def cidr_label_key(prefix: str) -> str:
    """The ``cidr:`` label key of a prefix; IPv6 ``:`` become ``-`` as in Cilium
    (``::/0`` → ``0--0/0``; a leading or trailing ``-`` gets a ``0``)."""
    net = ipaddress.ip_network(normalize_prefix(prefix))
    addr = str(net.network_address)
    if net.version == 6:
        addr = addr.replace(":", "-")
        if addr.startswith("-"):
            addr = "0" + addr
        if addr.endswith("-"):
            addr += "0"
    return f"{addr}/{net.prefixlen}"


def cidr_labels(prefix: str, *, dual_stack: bool = False) -> LabelSet:
    """``cidr:<prefix>`` + the world label; a ``/0`` is the world label alone.

    With ``dual_stack`` the world label is ``reserved:world-ipv4`` or
    ``reserved:world-ipv6``; otherwise ``reserved:world`` (§1.5)."""
    net = ipaddress.ip_network(normalize_prefix(prefix))
    world = f"world-ipv{net.version}" if dual_stack else "world"
    world_label = Label(SOURCE_RESERVED, world)
    if net.prefixlen == 0:
        return frozenset({world_label})
    return frozenset({Label(SOURCE_CIDR, cidr_label_key(prefix)), world_label})
