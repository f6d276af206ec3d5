"""``DATA_DIR/peer-marks.json``: per peer, the newest signature timestamp
(Unix ms) this node accepted on a signed peer request.

The nonces a node has seen die with its process, and a peer whose clock
runs ahead signs requests that look newer than the node's restart, so a
request recorded just before a restart could be accepted again after it.
:class:`raft_trio.peer.auth.PeerAuthenticator` refuses, after a restart,
any request signed no later than what it accepted before; this file is
where that survives. It is replaced whole (temporary file, fsync, rename,
directory fsync) before a request is acted on: stream openings and
snapshot batches, a handful a minute.

A file that cannot be read (damaged, or from a newer version) is set
aside as empty with a warning: it only narrows a replay window that the
start time closes for peers whose clocks are in step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from ._files import atomic_write

log = logging.getLogger(__name__)

PEER_MARKS_NAME = "peer-marks.json"


class PeerMarksFile:
    """The marks of the data directory at ``root``."""

    def __init__(self, root: Path) -> None:
        self.path = root / PEER_MARKS_NAME

    def load(self) -> dict[str, int]:
        try:
            marks = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("%s unreadable (%s): peer requests are checked by their time alone", self.path, error)
            return {}
        if not (
            isinstance(marks, dict) and all(isinstance(k, str) and type(v) is int for k, v in marks.items())
        ):
            log.warning(
                "%s is not a map of peer ids to times: peer requests are checked by their time alone",
                self.path,
            )
            return {}
        return marks

    def save(self, marks: Mapping[str, int]) -> None:
        atomic_write(self.path, json.dumps(dict(marks), sort_keys=True).encode())
