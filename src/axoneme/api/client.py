"""A small synchronous client for the agent's REST API on its unix socket.

Stdlib only (http.client), so the CLI starts fast.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any


class AgentUnavailableError(Exception):
    """The agent's socket is missing or nobody answers on it."""


class AgentAPIError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"agent answered {status}: {body.get('msg', body)}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("agent", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AgentClient:
    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"null")
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentUnavailableError(f"no agent listening on {self.socket_path}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnavailableError(f"agent on {self.socket_path}: {exc}") from exc
        finally:
            conn.close()
        if resp.status != 200:
            raise AgentAPIError(resp.status, data if isinstance(data, dict) else {"msg": data})
        return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)
