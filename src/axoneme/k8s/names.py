"""Kubernetes name, label and port-name syntax, as the API server checks it."""

from __future__ import annotations

import re
from typing import Any

from axoneme.k8s.errors import ValidationError

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def dns_label(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "required string")
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValidationError(
            field, f"{value!r} is not a DNS-1123 label (lowercase alphanumerics and '-', ≤63)"
        )
    return value


def dns_subdomain(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "required string")
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValidationError(field, f"{value!r} is not a DNS-1123 subdomain")
    return value


def label_map(field: str, value: Any) -> dict[str, str]:
    """Validate a labels map: qualified-name keys, ≤63-char values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, "must be a map of string to string")
    out: dict[str, str] = {}
    for key, val in value.items():
        where = f"{field}[{key!r}]" if isinstance(key, str) else field
        if not isinstance(key, str) or not key:
            raise ValidationError(field, f"label key {key!r} must be a non-empty string")
        prefix, _, name = key.rpartition("/")
        if prefix:
            dns_subdomain(where, prefix)
        if len(name) > 63 or not _LABEL_NAME.match(name):
            raise ValidationError(where, f"{key!r} is not a valid label key")
        if val is None:
            val = ""
        if not isinstance(val, str):
            raise ValidationError(where, f"label value must be a string, not {type(val).__name__}")
        if val and (len(val) > 63 or not _LABEL_NAME.match(val)):
            raise ValidationError(where, f"{val!r} is not a valid label value")
        out[key] = val
    return out


def string_map(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(field, "must be a map of string to string")
    return dict(value)


def port_name(field: str, value: Any) -> str:
    """IANA_SVC_NAME: ≤15 chars, lowercase alphanumerics and '-', at least one letter."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be a non-empty string")
    if (
        len(value) > 15
        or not _PORT_NAME.match(value)
        or "--" in value
        or not re.search("[a-z]", value)
    ):
        raise ValidationError(field, f"{value!r} is not a valid port name (IANA_SVC_NAME)")
    return value


def port_number(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {value!r}")
    if not 1 <= value <= 65535:
        raise ValidationError(field, f"{value} is not in 1..65535")
    return value
