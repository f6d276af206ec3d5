"""Peer connections give up on bytes their peer's kernel never
acknowledges (TCP_USER_TIMEOUT): a peer whose address vanished sends no
reset, and a stream to it would otherwise swallow votes for the kernel's
quarter of an hour of retransmits."""

from __future__ import annotations

import functools
import socket

import httpx
import pytest
import trio

from raft_trio.peer.transport import UNACKNOWLEDGED_S, Transport, httpx_request

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")


async def answer_204(stream: trio.SocketStream) -> None:
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(4096)
        await stream.send_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await trio.sleep(1)


async def test_a_peer_connection_gives_up_on_unacknowledged_bytes() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, answer_204, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        peers = Transport("n1", nursery, 1.0, lambda peer: None, lambda peer, sent: None)
        transport = peers._http  # the pool every stream to a peer draws from
        assert transport is not None
        async with transport:
            request = httpx.Request("POST", f"http://127.0.0.1:{port}/raft/stream", content=b"x")
            response = await transport.handle_async_request(request)
            sock = response.extensions["network_stream"].get_extra_info("socket")
            option = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            await response.aclose()
            assert option == int(UNACKNOWLEDGED_S * 1000)
            # The request function the streams use goes through such a transport.
            assert await httpx_request(transport)(f"http://127.0.0.1:{port}/raft/stream", {}, b"x") == 204
        nursery.cancel_scope.cancel()
