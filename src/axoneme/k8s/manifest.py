"""Reading manifests: YAML or JSON, several documents, ``kind: List``, all or nothing."""

from __future__ import annotations

from typing import Any

import yaml

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import validate


def load_documents(text: str, source: str) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValidationError("(document)", f"not valid YAML/JSON: {exc}", source) from exc
    flat: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise ValidationError("items", "a List must have an items list", source)
            flat.extend(items)
        else:
            flat.append(doc)
    return flat


def parse_manifest(text: str, source: str) -> list[dict[str, Any]]:
    """Validate every object first: a manifest with one bad object applies nothing."""
    objects = []
    for index, doc in enumerate(load_documents(text, source)):
        try:
            objects.append(validate(doc))
        except ValidationError as exc:
            raise exc.within(f"{source} (object {index + 1})") from None
    if not objects:
        raise ValidationError("(document)", "no objects found", source)
    return objects
