"""Reserved identities with Cilium's numbers, and the identity number ranges."""

from __future__ import annotations

from typing import NewType

from axoneme.labels.model import SOURCE_RESERVED, Label, LabelSet, label_set

NumericIdentity = NewType("NumericIdentity", int)

UNKNOWN = NumericIdentity(0)
HOST = NumericIdentity(1)
WORLD = NumericIdentity(2)
UNMANAGED = NumericIdentity(3)
HEALTH = NumericIdentity(4)
INIT = NumericIdentity(5)
REMOTE_NODE = NumericIdentity(6)
KUBE_APISERVER = NumericIdentity(7)
INGRESS = NumericIdentity(8)

RESERVED: dict[str, NumericIdentity] = {
    "host": HOST,
    "world": WORLD,
    "unmanaged": UNMANAGED,
    "health": HEALTH,
    "init": INIT,
    "remote-node": REMOTE_NODE,
    "kube-apiserver": KUBE_APISERVER,
    "ingress": INGRESS,
}

# Cluster-scoped identities allocated through the store (Cilium's default range).
MIN_CLUSTER_IDENTITY = 256
MAX_CLUSTER_IDENTITY = 65535
# Node-local identities (CIDR), scope bit 24 set, as in Cilium.
LOCAL_IDENTITY_FLAG = 1 << 24


def reserved_labels(name: str) -> LabelSet:
    return label_set(Label(SOURCE_RESERVED, name))


def is_local(identity: int) -> bool:
    return bool(identity & LOCAL_IDENTITY_FLAG)
