"""Sans-io handling of CNI requests forwarded by the plugin: parse, and shape results.

The plugin has already checked the runtime's input; the agent checks again,
because its API is an entry point of its own (any local root process can call it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from axoneme.endpoint.model import Endpoint

COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS")
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_IFNAME_BAD = re.compile(r"[/:\s]")

CODE_INCOMPATIBLE_VERSION = 1
CODE_INVALID_ENV = 4
CODE_DECODE = 6
CODE_INVALID_CONFIG = 7
CODE_TRY_AGAIN = 11


class CNIRequestError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str = "1.0.0") -> dict[str, Any]:
        return {
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        }


@dataclass(frozen=True)
class CNIRequest:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def cni_version(self) -> str:
        return str(self.config.get("cniVersion", "1.0.0"))

    @property
    def pod_namespace(self) -> str:
        return self.args.get("K8S_POD_NAMESPACE", "")

    @property
    def pod_name(self) -> str:
        return self.args.get("K8S_POD_NAME", "")


def _str(body: dict[str, Any], key: str, *, required: bool) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise CNIRequestError(CODE_INVALID_ENV, f"{key} must be a string")
    if required and not value:
        raise CNIRequestError(CODE_INVALID_ENV, f"{key} is required")
    return value


def parse_request(command: str, body: Any) -> CNIRequest:
    if command not in COMMANDS:
        raise CNIRequestError(CODE_INVALID_ENV, f"command: unknown CNI command {command!r}")
    if not isinstance(body, dict):
        raise CNIRequestError(CODE_DECODE, "request body must be a JSON object")
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise CNIRequestError(CODE_INVALID_CONFIG, "config must be a JSON object")
    args = body.get("args", {})
    if not isinstance(args, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in args.items()
    ):
        raise CNIRequestError(CODE_INVALID_ENV, "args must be a map of string to string")
    per_attachment = command in ("ADD", "DEL", "CHECK")
    container_id = _str(body, "containerId", required=per_attachment)
    if container_id and not _CONTAINER_ID.match(container_id):
        raise CNIRequestError(
            CODE_INVALID_ENV, f"containerId: {container_id!r} has characters CNI does not allow"
        )
    ifname = _str(body, "ifname", required=per_attachment)
    if ifname and (len(ifname) > 15 or ifname in (".", "..") or _IFNAME_BAD.search(ifname)):
        raise CNIRequestError(CODE_INVALID_ENV, f"ifname: {ifname!r} is not a valid interface name")
    netns = _str(body, "netns", required=command in ("ADD", "CHECK"))
    if netns and not netns.startswith("/"):
        raise CNIRequestError(CODE_INVALID_ENV, f"netns: {netns!r} must be an absolute path")
    return CNIRequest(command, container_id, netns, ifname, dict(args), config)


def add_result(req: CNIRequest, ep: Endpoint, router_ip: str) -> dict[str, Any]:
    """The CNI 1.0.0 ADD result for an endpoint."""
    return {
        "cniVersion": req.cni_version,
        "interfaces": [
            {"name": ep.host_ifname, "mac": ep.host_mac},
            {"name": ep.ifname, "mac": ep.pod_mac, "sandbox": ep.netns},
        ],
        "ips": [{"address": f"{ep.ipv4}/32", "gateway": router_ip, "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": router_ip}],
        "dns": {},
    }
