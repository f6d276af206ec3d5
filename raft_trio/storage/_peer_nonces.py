"""``DATA_DIR/peer-nonces.json``: the signed peer requests this node
accepted that a replay could still pass the timestamp window with: each
as ``[sender, nonce, signed at (Unix ms)]``.

The nonces a node has seen die with its process, and a peer whose clock
runs ahead signs requests that look newer than the node's restart, so a
request recorded just before a restart could be accepted again after it.
:class:`raft_trio.peer.auth.PeerAuthenticator` writes what it accepts here
before the request is acted on and reads it back when the node starts:
a replay is refused after a restart as before it, and no honest request
ever is. The file is replaced whole (temporary file, fsync, rename,
directory fsync): signed requests are stream openings and snapshot
batches, a handful a minute, and only those of the last 30 s are kept.

A file that cannot be read (damaged, or from a newer version) is set
aside as empty with a warning: it only narrows a replay window that the
start time closes for peers whose clocks are in step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ._files import atomic_write

log = logging.getLogger(__name__)

PEER_NONCES_NAME = "peer-nonces.json"


class PeerNoncesFile:
    """The accepted peer requests kept in the data directory at ``root``."""

    def __init__(self, root: Path) -> None:
        self.path = root / PEER_NONCES_NAME

    def load(self) -> list[tuple[str, str, int]]:
        try:
            kept = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError, RecursionError) as error:
            log.warning("%s unreadable (%s): peer requests are checked by their time alone", self.path, error)
            return []
        if not (isinstance(kept, list) and all(_is_accepted(a) for a in kept)):
            log.warning(
                "%s is not a list of [sender, nonce, time]: peer requests are checked by their time alone",
                self.path,
            )
            return []
        return [(sender, nonce, signed_ms) for sender, nonce, signed_ms in kept]

    def save(self, accepted: Sequence[tuple[str, str, int]]) -> None:
        atomic_write(self.path, json.dumps([list(a) for a in accepted]).encode())


def _is_accepted(item: object) -> bool:
    return (
        isinstance(item, list)
        and len(item) == 3
        and isinstance(item[0], str)
        and isinstance(item[1], str)
        and type(item[2]) is int
        and 0 <= item[2] < 10**16  # Unix ms, as a signature's time (16 digits at most)
    )
