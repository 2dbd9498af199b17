"""Drop reasons: the one code -> name table shared by the datapath and the observer.

The codes are Hubble's ``DropReason`` numbers (as Cilium's datapath uses them),
so flows can be exported unchanged. ``bpf/lib/drop.h`` defines the same table
for C; ``tests/unit/test_datapath_reasons.py`` parses it and fails on any
difference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REASONS", "DropReason", "describe", "name"]


@dataclass(frozen=True)
class DropReason:
    code: int
    name: str  # Hubble's DropReason enum name
    text: str  # what ``cilium monitor`` prints


REASONS: dict[int, DropReason] = {
    r.code: r
    for r in (
        DropReason(132, "INVALID_SOURCE_IP", "Invalid source ip"),
        DropReason(133, "POLICY_DENIED", "Policy denied"),
        DropReason(134, "INVALID_PACKET_DROPPED", "Invalid packet"),
        DropReason(139, "UNSUPPORTED_L3_PROTOCOL", "Unsupported L3 protocol"),
        DropReason(141, "ERROR_WRITING_TO_PACKET", "Error writing to packet"),
        DropReason(147, "ERROR_RETRIEVING_TUNNEL_KEY", "Error retrieving tunnel key"),
        # Cilium's DROP_CSUM_L4, which it also gives an SCTP packet whose service
        # backend has another port: rewriting an SCTP port needs the CRC32c redone.
        DropReason(154, "ERROR_WHILE_CORRECTING_L4_CHECKSUM", "Error while correcting L4 checksum"),
        DropReason(155, "CT_MAP_INSERTION_FAILED", "CT: Map insertion failed"),
        # Cilium's DROP_NO_SERVICE: a service frontend without a usable backend.
        DropReason(158, "SERVICE_BACKEND_NOT_FOUND", "Service backend not found"),
        DropReason(
            175,
            "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND",
            "First logical datagram fragment not found",
        ),
        DropReason(181, "POLICY_DENY", "Policy denied by denylist"),
    )
}


def name(code: int) -> str:
    """The reason's name; unknown codes read ``UNKNOWN_<code>`` (never raises)."""
    reason = REASONS.get(code)
    return reason.name if reason else f"UNKNOWN_{code}"


def describe(code: int) -> str:
    """The reason's human text; unknown codes read ``Unknown drop reason <code>``."""
    reason = REASONS.get(code)
    return reason.text if reason else f"Unknown drop reason {code}"
