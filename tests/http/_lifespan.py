"""The ASGI lifespan protocol for the test apps served by Hypercorn (its
Trio worker waits for the startup to be acknowledged)."""

from __future__ import annotations

from typing import Any


async def acknowledge_lifespan(receive: Any, send: Any) -> None:
    """Answers startup and shutdown, until shutdown."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
