"""Peer connections give up on bytes their peer's kernel never
acknowledges (TCP_USER_TIMEOUT): a peer whose address vanished sends no
reset, and a stream to it would otherwise swallow votes for the kernel's
quarter of an hour of retransmits. Checked on the connections a node's
transport really makes: a stream's (after the peer's 101) and a request's."""

from __future__ import annotations

import functools
import socket
from collections.abc import Awaitable, Callable

import httpcore
import httpx
import pytest
import trio

from raft_trio.peer.stream import connection_refused
from raft_trio.peer.transport import UNACKNOWLEDGED_S, Transport, _UpgradedConnection
from raft_trio.peer.wire import STREAM_PATH, stream_request

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux only")


async def switch_protocols(stream: trio.SocketStream) -> bool:
    """Reads a request's head: 101 if it asks to switch protocols (True),
    else nothing sent (False)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(4096)
    if b"\r\nupgrade: raft-stream\r\n" not in data.lower():
        return False
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raft-stream\r\n\r\n"
    )
    return True


async def answer(stream: trio.SocketStream) -> None:
    """101 to a request that asks to switch protocols, else 204."""
    async with stream:
        if not await switch_protocols(stream):
            await stream.send_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await trio.sleep(1)


async def stream_to(
    nursery: trio.Nursery, peer: Callable[[trio.SocketStream], Awaitable[None]]
) -> tuple[str, Transport, _UpgradedConnection]:
    """A node's transport and a stream it opened to ``peer`` on 127.0.0.1:
    the peer's URL, the transport, the stream's connection."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, peer, 0, host="127.0.0.1"))
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    peers = Transport("n1", nursery, 1.0, lambda peer: None, lambda peer, sent: None)
    headers, _ = stream_request("n1", "n2", None)
    connection = await peers._open_stream(url + STREAM_PATH, headers)
    assert isinstance(connection, _UpgradedConnection)
    return url, peers, connection


def user_timeout(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)


async def test_a_peer_connection_gives_up_on_unacknowledged_bytes() -> None:
    async with trio.open_nursery() as nursery:
        url, peers, connection = await stream_to(nursery, answer)
        assert user_timeout(connection._stream.get_extra_info("socket")) == int(UNACKNOWLEDGED_S * 1000)
        await connection.aclose()
        # Requests (snapshots) draw from a pool of their own, set alike.
        assert len(peers._pools) == 2
        for pool in peers._pools:
            request = httpx.Request("POST", url + "/raft/messages", content=b"x")
            response = await pool.handle_async_request(request)
            assert user_timeout(response.extensions["network_stream"].get_extra_info("socket")) == int(
                UNACKNOWLEDGED_S * 1000
            )
            await response.aclose()
        await peers.aclose()
        nursery.cancel_scope.cancel()


async def test_a_stream_connection_writes_at_once_what_the_kernel_takes() -> None:
    """``send_now`` never waits: it says how much the socket took (nothing
    once the peer, reading nothing, let the buffers fill), and the bytes
    arrive in order with what ``send_all`` wrote after them."""
    read = bytearray()
    start_reading = trio.Event()
    done = trio.Event()

    async def slow_peer(stream: trio.SocketStream) -> None:
        async with stream:
            assert await switch_protocols(stream)
            await start_reading.wait()
            while chunk := await stream.receive_some(1 << 16):
                read.extend(chunk)
            done.set()

    async with trio.open_nursery() as nursery:
        _, peers, connection = await stream_to(nursery, slow_peer)
        sent = bytearray()
        chunk = bytes(range(256)) * 256
        for _ in range(10_000):
            taken = connection.send_now(chunk)
            sent += chunk[:taken]
            if taken == 0:
                break
        else:
            raise AssertionError("the socket took 640 MB at once from a peer that reads nothing")
        assert len(sent) > 0
        start_reading.set()
        await connection.send_all(b"the end")
        await connection.aclose()
        with trio.fail_after(10):
            await done.wait()
        assert read == sent + b"the end"
        await peers.aclose()
        nursery.cancel_scope.cancel()


async def test_a_stream_to_a_closed_port_fails_as_refused() -> None:
    """What httpx and Trio raise when nothing listens at a peer's address
    is recognised as a refusal, through their wrapping; an address that
    answers is not."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # bound once, never listened on: the kernel refuses
    async with trio.open_nursery() as nursery:
        peers = Transport("n1", nursery, 1.0, lambda peer: None, lambda peer, sent: None)
        headers, _ = stream_request("n1", "n2", None)
        with pytest.raises(httpx.ConnectError) as caught:
            await peers._open_stream(f"http://127.0.0.1:{port}{STREAM_PATH}", headers)
        assert connection_refused(caught.value)
        await peers.aclose()


def _raised_while_handling(handled: BaseException, raised: BaseException, *, suppress: bool) -> BaseException:
    """``raised`` as Python chains it when raised inside ``except`` of
    ``handled`` (with ``from None`` if ``suppress``)."""
    try:
        try:
            raise handled
        except BaseException:
            if suppress:
                raise raised from None
            raise raised  # noqa: B904 (the chain is what is tested)
    except BaseException as chained:
        return chained


def refused_group(*errors: OSError) -> OSError:
    """Trio's failure to connect: an OSError caused by one error per address."""
    failure = OSError("all attempts to connect failed")
    failure.__cause__ = BaseExceptionGroup("all attempts to connect failed", list(errors))
    return failure


def test_refused_at_every_address_is_a_refusal() -> None:
    assert connection_refused(refused_group(ConnectionRefusedError(), ConnectionRefusedError()))
    wrapped = httpx.ConnectError("all attempts failed")
    wrapped.__cause__ = _raised_while_handling(
        refused_group(ConnectionRefusedError()), httpcore.ConnectError("all attempts failed"), suppress=True
    )
    assert connection_refused(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        refused_group(ConnectionRefusedError(), OSError(113, "No route to host")),
        _raised_while_handling(ConnectionRefusedError(), httpx.ConnectTimeout("timed out"), suppress=True),
        _raised_while_handling(ConnectionRefusedError(), httpx.ConnectTimeout("timed out"), suppress=False),
        _raised_while_handling(refused_group(ConnectionRefusedError()), OSError("reset"), suppress=False),
        httpx.ConnectTimeout("timed out"),
        OSError("unreachable"),
    ],
    ids=[
        "one-address-unreachable",
        "timeout-while-handling-a-refusal",
        "timeout-in-a-refusals-context",
        "oserror-in-a-refusals-context",
        "timeout",
        "no-cause",
    ],
)
def test_other_connection_failures_are_not_refusals(error: BaseException) -> None:
    """Only a refusal at every address counts, and only through the chain
    httpx, httpcore and Trio make: an error raised while a refusal was
    being handled is not one."""
    assert not connection_refused(error)
