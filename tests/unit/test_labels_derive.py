"""Pod → endpoint labels, the identity-relevant label filter, CIDR and reserved labels."""

from __future__ import annotations

import pytest

from axoneme.k8s.objects import Namespace, Pod
from axoneme.labels.derive import (
    DEFAULT_LABEL_FILTER,
    HOST_LABELS,
    WORLD_LABELS,
    LabelFilter,
    LabelPattern,
    cidr_label_key,
    cidr_labels,
    endpoint_labels,
    pod_labels,
    reserved,
)
from axoneme.labels.model import Label, format_labels


def k8s(key: str, value: str) -> Label:
    return Label("k8s", key, value)


def test_endpoint_labels_for_a_pod() -> None:
    pod = Pod(
        namespace="shop",
        name="web-1",
        labels={"app": "web", "tier": "front", "pod-template-hash": "abc123"},
        service_account="web-sa",
    )
    ns = Namespace("shop", {"team": "blue"})
    assert format_labels(endpoint_labels(pod, ns, "c1")) == [
        "k8s:app=web",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
        "k8s:io.cilium.k8s.namespace.labels.team=blue",
        "k8s:io.cilium.k8s.policy.cluster=c1",
        "k8s:io.cilium.k8s.policy.serviceaccount=web-sa",
        "k8s:io.kubernetes.pod.namespace=shop",
        "k8s:tier=front",
    ]
    # The rollout hash is a label of the endpoint but not part of its identity.
    assert k8s("pod-template-hash", "abc123") in pod_labels(pod, ns, "c1")


def test_defaults_without_namespace_object_and_cluster() -> None:
    got = endpoint_labels(Pod(namespace="d", name="p"), None)
    assert format_labels(got) == [
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=d",
        "k8s:io.cilium.k8s.policy.cluster=default",
        "k8s:io.cilium.k8s.policy.serviceaccount=default",
        "k8s:io.kubernetes.pod.namespace=d",
    ]


def test_pods_with_the_same_relevant_labels_get_the_same_set() -> None:
    a = Pod(
        "d",
        "a",
        labels={"app": "x", "pod-template-hash": "1", "statefulset.kubernetes.io/pod-name": "a"},
    )
    b = Pod(
        "d",
        "b",
        labels={"app": "x", "pod-template-hash": "2", "statefulset.kubernetes.io/pod-name": "b"},
    )
    assert endpoint_labels(a, None) == endpoint_labels(b, None)


def test_a_pod_cannot_claim_another_namespace_or_its_labels() -> None:
    pod = Pod(
        "evil",
        "p",
        labels={
            "io.kubernetes.pod.namespace": "kube-system",
            "io.cilium.k8s.namespace.labels.team": "admins",
            "io.cilium.k8s.policy.serviceaccount": "root",
            "io.cilium.k8s.policy.cluster": "other",
        },
    )
    got = endpoint_labels(pod, Namespace("evil", {}), "c1")
    assert k8s("io.kubernetes.pod.namespace", "evil") in got
    assert k8s("io.kubernetes.pod.namespace", "kube-system") not in got
    assert not any(lb.key == "io.cilium.k8s.namespace.labels.team" for lb in got)
    assert k8s("io.cilium.k8s.policy.serviceaccount", "default") in got
    assert k8s("io.cilium.k8s.policy.cluster", "c1") in got
    assert len([lb for lb in got if lb.key == "io.kubernetes.pod.namespace"]) == 1


def test_kubernetes_sets_the_namespace_name_label_itself() -> None:
    ns = Namespace("real", {"kubernetes.io/metadata.name": "forged"})
    got = endpoint_labels(Pod("real", "p"), ns)
    assert k8s("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "real") in got
    assert k8s("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "forged") not in got


@pytest.mark.parametrize(
    ("key", "relevant"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("io.kubernetes.pod.namespace", True),
        ("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", True),
        ("io.cilium.k8s.policy.cluster", True),
        ("io.cilium.k8s.policy.serviceaccount", True),
        ("io.kubernetes.container.name", False),
        ("kubernetes.io/hostname", False),
        ("beta.kubernetes.io/arch", False),
        ("node.beta.kubernetes.io/x", False),
        ("k8s.io/foo", False),
        ("statefulset.kubernetes.io/pod-name", False),
        ("apps.kubernetes.io/pod-index", False),
        ("batch.kubernetes.io/job-completion-index", False),
        ("batch.kubernetes.io/controller-uid", False),
        ("controller-uid", False),
        ("pod-template-generation", False),
        ("pod-template-hash", False),
        ("controller-revision-hash", False),
        ("annotation.foo", False),
        ("etcd_node", False),
        # Anchored at the start of the key: these only contain an excluded word.
        ("my.io.kubernetes", True),
        ("team-k8s.io", True),
    ],
)
def test_default_filter(key: str, relevant: bool) -> None:
    assert DEFAULT_LABEL_FILTER.relevant(k8s(key, "v")) is relevant


def test_reserved_labels_are_always_relevant() -> None:
    assert DEFAULT_LABEL_FILTER.relevant(Label("reserved", "host"))
    strict = LabelFilter.from_patterns(["app$"])
    assert strict.relevant(Label("reserved", "host"))


def test_user_inclusive_patterns_keep_only_what_they_match() -> None:
    f = LabelFilter.from_patterns(["k8s:app$", "tier"])
    assert f.inclusive_only
    pod = Pod(
        "d",
        "p",
        labels={
            "app": "a",
            "application": "b",
            "tier": "t",
            "other": "o",
            "app.kubernetes.io/name": "n",
        },
    )
    got = {lb.key for lb in endpoint_labels(pod, None, label_filter=f)}
    assert got == {
        "app",
        "tier",
        "app.kubernetes.io/name",
        "io.kubernetes.pod.namespace",
        "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
        "io.cilium.k8s.policy.cluster",
    }
    # Source-qualified: k8s:app$ does not match a container label.
    assert not f.relevant(Label("container", "app", "a"))


def test_user_exclusive_patterns_add_to_the_defaults() -> None:
    f = LabelFilter.from_patterns(["!version", "k8s:!tmp-.*"])
    assert not f.inclusive_only
    assert not f.relevant(k8s("version", "1"))
    assert not f.relevant(k8s("tmp-build", "1"))
    assert f.relevant(k8s("app", "a"))
    assert not f.relevant(k8s("pod-template-hash", "x"))


def test_longer_inclusive_match_beats_shorter_exclusion() -> None:
    f = LabelFilter.from_patterns(["!foo", "foo.bar"])
    assert f.relevant(k8s("foo.bar", "1"))
    assert not f.relevant(k8s("foo.baz", "1"))


def test_bad_patterns() -> None:
    with pytest.raises(ValueError, match="empty"):
        LabelPattern.parse("k8s:!")
    with pytest.raises(ValueError):
        LabelPattern.parse("(")
    assert str(LabelPattern.parse("k8s:!x")) == "!k8s:x"


def test_cidr_labels() -> None:
    assert format_labels(cidr_labels("10.0.0.0/8")) == ["cidr:10.0.0.0/8", "reserved:world"]
    assert format_labels(cidr_labels("10.1.2.3/8")) == ["cidr:10.0.0.0/8", "reserved:world"]
    assert format_labels(cidr_labels("192.168.1.1")) == [
        "cidr:192.168.1.1/32",
        "reserved:world",
    ]
    assert cidr_labels("0.0.0.0/0") == WORLD_LABELS
    assert format_labels(cidr_labels("::/0", dual_stack=True)) == ["reserved:world-ipv6"]
    assert format_labels(cidr_labels("2001:db8::/32", dual_stack=True)) == [
        "cidr:2001-db8--0/32",
        "reserved:world-ipv6",
    ]
    assert cidr_label_key("::1/128") == "0--1/128"
    with pytest.raises(ValueError):
        cidr_labels("not-an-ip")


def test_reserved_label_sets() -> None:
    assert format_labels(HOST_LABELS) == ["reserved:host"]
    assert format_labels(reserved("remote-node")) == ["reserved:remote-node"]
