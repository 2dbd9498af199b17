"""What ``apply`` writes: a new object, or the stored one updated, as the API server would.

Pure: given the stored object (or None) and the validated manifest object,
return the object to store, or raise ValidationError for a change Kubernetes
forbids (a Pod's spec is immutable but for a few fields).
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from axoneme.k8s.errors import ValidationError

Obj = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_object(desired: Obj, uid: str | None = None, created: str | None = None) -> Obj:
    obj = copy.deepcopy(desired)
    meta = obj["metadata"]
    meta.pop("resourceVersion", None)
    meta["uid"] = uid or str(uuid.uuid4())
    meta["creationTimestamp"] = created or _now()
    if obj["kind"] == "Pod":
        obj["status"] = {"phase": "Pending"}
    elif obj["kind"] == "Namespace":
        obj["status"] = {"phase": "Active"}
    return obj


def merge(stored: Obj, desired: Obj) -> Obj:
    """The stored object with the manifest's changes; system fields are kept."""
    obj = copy.deepcopy(stored)
    for key in ("labels", "annotations"):
        if key in desired["metadata"]:
            obj["metadata"][key] = copy.deepcopy(desired["metadata"][key])
        else:
            obj["metadata"].pop(key, None)
    if desired["kind"] == "Pod":
        want = copy.deepcopy(desired.get("spec", {}))
        have = stored.get("spec", {})
        # The scheduler's binding is part of the stored spec, not of the manifest.
        if not want.get("nodeName") and have.get("nodeName"):
            want["nodeName"] = have["nodeName"]
        if want != have:
            changed = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            raise ValidationError(
                f"spec.{changed[0]}",
                "Forbidden: pod updates may not change fields other than labels and annotations"
                " (delete and re-create the pod)",
            )
    else:
        # Everything but the system fields is the manifest's (spec, specs, ...).
        system = {"apiVersion", "kind", "metadata", "status"}
        for key in [k for k in obj if k not in system]:
            del obj[key]
        obj.update({k: copy.deepcopy(v) for k, v in desired.items() if k not in system})
    return obj
