"""The do-nothing HTTP server against which ``bench/compare.py`` measures
wrk's own ceiling: a bare asyncio protocol (no HTTP parser, no framework)
that answers every request head it sees with one fixed ``200``, keeping the
connection alive. It counts request heads by their blank line, so it serves
wrk's requests (whose bodies hold no blank line) and nothing more general.

Usage: ``python -m bench.null_server PORT`` (runs until killed).
"""

from __future__ import annotations

import asyncio
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
END_OF_HEAD = b"\r\n\r\n"


class Answer(asyncio.Protocol):
    """One connection: one fixed answer per request head."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        # Keep the last 3 bytes: a blank line may be split across reads.
        chunk = self.tail + data
        heads = chunk.count(END_OF_HEAD)
        self.tail = chunk[-3:]
        if heads and self.transport is not None:
            self.transport.write(RESPONSE * heads)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", port, backlog=1024)
    print(f"null server on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
