"""The client front door of a node with nothing behind it: the same
Hypercorn configuration, on Trio, with the same ASGI wrappers
(:func:`raft_trio.asgi.serve_app`) and process-wide settings
(:func:`raft_trio.server.tune_process`), serving a do-nothing ASGI app that
reads each request's body and answers ``200 {}``. ``bench/compare.py``
drives it with the same wrk load as the nodes: its rate is the ceiling
that the HTTP stack alone allows a node on this machine.

Usage: ``python -m bench.front_door PORT`` (runs until killed).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import trio

from raft_trio.asgi import serve_app
from raft_trio.server import tune_process

BODY = b"{}\n"
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def do_nothing(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        # Hypercorn's Trio worker needs the startup acknowledged.
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_app, do_nothing, "127.0.0.1", port, trio.Event()))
        print(f"front door on 127.0.0.1:{port}", flush=True)


if __name__ == "__main__":
    tune_process()  # a node's process-wide settings
    trio.run(main, int(sys.argv[1]))
