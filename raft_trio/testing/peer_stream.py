"""A peer stream opened by hand, for tests that send a node what no node
would (forged or malformed frames): a blocking socket speaking the
stream's opening (``GET /raft/stream``, ``Upgrade: raft-stream``), then raw
bytes, then reading how the node answered.

    stream = PeerStreamClient.open(url, headers)
    if stream.status == 101:
        stream.send(frame)
        status, body = stream.finish()   # the line that ended the stream
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import h11

from ..peer.wire import STREAM_PATH

#: Bytes of a stream's end line read at most (it is far shorter).
MAX_ANSWER_BYTES = 64 * 1024


class PeerStreamClient:
    """One stream's connection, opened and answered (``status``: 101, or the
    refusal's status with its JSON ``body``)."""

    def __init__(self, sock: socket.socket, status: int, body: Any, rest: bytes) -> None:
        self._sock = sock
        self.status = status
        self.body = body
        self._rest = rest

    @classmethod
    def open(
        cls, url: str, headers: dict[str, str], *, verify: ssl.SSLContext | None = None, timeout: float = 10.0
    ) -> PeerStreamClient:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        sock = socket.create_connection((host, port), timeout=timeout)
        if parts.scheme == "https":
            sock = (verify or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
        http = h11.Connection(h11.CLIENT)
        target = parts.path.rstrip("/") + STREAM_PATH
        sock.sendall(
            http.send(
                h11.Request(method="GET", target=target, headers=[("Host", parts.netloc), *headers.items()])
            )
        )
        sock.sendall(http.send(h11.EndOfMessage()))
        answer: Any = None
        body = b""
        while not isinstance(answer, h11.ConnectionClosed):
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(sock.recv(4096))
            elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                rest, _ = http.trailing_data
                return cls(sock, 101, None, bytes(rest))
            elif isinstance(event, h11.Response):
                answer = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                answer = event
        sock.close()
        if not isinstance(answer, h11.Response):
            raise ConnectionError(f"the node closed the connection without an answer ({answer!r})")
        return cls(sock, answer.status_code, json.loads(body) if body else None, b"")

    def send(self, data: bytes) -> None:
        """Writes raw bytes on the stream (a node that refused a frame may
        have closed the connection: then this raises ``OSError``)."""
        self._sock.sendall(data)

    def finish(self, *, end: bool = True) -> tuple[int, Any]:
        """Ends the stream from this side (``end``: half-closes it, not
        possible over TLS) and reads the node's last word: the status and
        error of the line it ends a stream with."""
        if end and not isinstance(self._sock, ssl.SSLSocket):
            self._sock.shutdown(socket.SHUT_WR)
        data = self._rest
        try:
            while len(data) <= MAX_ANSWER_BYTES and (chunk := self._sock.recv(4096)):
                data += chunk
        except ssl.SSLError:
            pass  # a TLS connection closed without close_notify
        finally:
            self._sock.close()
        line = json.loads(data)
        return int(line["status"]), line
