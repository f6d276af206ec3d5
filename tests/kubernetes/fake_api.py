"""A fake Kubernetes API server for ``raft-trio leave``: it serves one
StatefulSet's ``GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}`` to
a caller with the right bearer token (401 otherwise, 404 for any other
object), and records every request it got. Plain HTTP on 127.0.0.1, in a
thread of the test process; ``service_account`` writes the directory a pod
would have mounted (token and namespace)."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str | None


class FakeKubernetesApi:
    def __init__(self, namespace: str, statefulset: str, replicas: int, token: str) -> None:
        self.namespace = namespace
        self.statefulset = statefulset
        self.replicas = replicas
        self.token = token
        #: When set, every request is answered with this status.
        self.force_status: int | None = None
        self.seen: list[Seen] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.seen.append(Seen("GET", self.path, self.headers.get("Authorization")))
                status, body = api.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/statefulsets/{self.statefulset}"

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        if self.force_status is not None:
            return self.force_status, {"kind": "Status", "code": self.force_status}
        if authorization != f"Bearer {self.token}":
            return 401, {"kind": "Status", "code": 401, "reason": "Unauthorized"}
        if path != self.path:
            return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
        return 200, {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": self.statefulset, "namespace": self.namespace},
            "spec": {"replicas": self.replicas},
        }

    def service_account(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(self.token + "\n")
        (directory / "namespace").write_text(self.namespace)
        return directory

    def __enter__(self) -> FakeKubernetesApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
