"""A watch without I/O: where it stands, how to (re)open it on any
endpoint, and what each item of the stream means.

No change is lost or repeated across reconnects. The node numbers events
by revision, and one revision can hold several changes (a transaction's),
all sent at once; a connection can still break between two of them. So
the cursor resumes from the revision *before* the last one it delivered
(``Last-Event-ID: R - 1``, the node then starts at R) and skips the
changes of revision R it already delivered, by key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import urlencode

import msgspec

from .. import schema
from ._errors import ApiError, ClientError, Compacted, NotANode, api_error, error_answer, is_node_answer
from .sse import SseComment, SseDropped, SseEvent

#: A node sends a comment on a quiet watch at least every 5 s; a stream
#: silent for this long is taken for dead and opened again elsewhere.
WATCH_STALL_S = 15.0
#: Statuses of an answer to a watch request that another endpoint (or a
#: later try) may not give.
RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclasses.dataclass
class WatchCursor:
    """Where a watch stands: the query, and the revision it reached."""

    key: str | None = None
    prefix: str | None = None
    start_revision: int | None = None
    prev_value: bool = False
    #: The revision of the last change delivered, and the keys delivered
    #: at that revision.
    revision: int | None = None
    delivered: set[str] = dataclasses.field(default_factory=set)
    #: ``start_revision`` was taken from a first answer (:meth:`opened`),
    #: not given by the caller.
    adopted: bool = dataclasses.field(default=False, compare=False)
    #: A node's 410 (it holds no history that old) in this round of the
    #: endpoints: raised once every endpoint was tried and none served the
    #: watch (:meth:`round_over`), since another may still hold the history.
    compacted: Compacted | None = dataclasses.field(default=None, compare=False)
    #: A node served the watch in this round (:meth:`served`).
    served_in_round: bool = dataclasses.field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.key is not None and self.prefix is not None:
            raise ValueError("watch a key or a prefix, not both")
        if self.key == "":
            raise ValueError("the key is empty")

    def target(self, api_prefix: str) -> str:
        params: list[tuple[str, str]] = []
        if self.key is not None:
            params.append(("key", self.key))
        elif self.prefix is not None:
            params.append(("prefix", self.prefix))
        if self.start_revision is not None and self.revision is None:
            params.append(("start_revision", str(self.start_revision)))
        if self.prev_value:
            params.append(("prev_value", "true"))
        return api_prefix.rstrip("/") + "/watch" + ("?" + urlencode(params) if params else "")

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.revision is not None:
            headers["Last-Event-ID"] = str(self.revision - 1)
        return headers

    def opened(self, headers: Mapping[str, str]) -> None:
        """A node answered the watch with ``headers``, its applied revision
        among them (``X-Raft-Revision``). A watch "from the next change" that has
        delivered nothing yet starts, wherever it is opened again, after
        that revision: without it, changes made while its stream was being
        replaced (a node cut off ends its watches) would be skipped."""
        revision = headers.get(schema.REVISION_HEADER, "")
        if (
            self.revision is None
            and self.start_revision is None
            and revision.isascii()
            and revision.isdigit()
        ):
            self.start_revision = int(revision) + 1
            self.adopted = True

    def refused(self, status: int, body: bytes, url: str) -> ApiError:
        """The error for a watch request not answered 200; the caller
        raises it unless :meth:`may_retry`."""
        error = api_error(status, error_answer(status, body), url)
        return error if is_node_answer(body) else NotANode(status, error.answer, url)

    def may_retry(self, error: ApiError) -> bool:
        """Whether the watch goes on after ``error`` (another endpoint, or
        later): a status another may not give, or a 410 (answered, or told
        mid-stream). A node's history starts at its latest snapshot when it
        restarts, and at the one it installed when it fell behind; the
        other nodes may still hold the changes, so the 410 is raised only
        once every endpoint was tried (:meth:`round_over`). For a start
        this cursor took from a first answer itself the watch starts
        again from the next change at once: the caller asked for the next
        change, not for that revision (a change made while it moved may be
        missed, as before there was an adopted start)."""
        if retryable(error):
            return True
        if not isinstance(error, Compacted):
            return False
        if self.adopted and self.revision is None:
            self.start_revision, self.adopted = None, False
        else:
            self.compacted = error
        return True

    def served(self) -> None:
        """A node serves the watch (an event or a keep-alive came)."""
        self.served_in_round = True

    def round_over(self) -> None:
        """Every endpoint was tried once: if none served the watch, raises
        the :class:`~._errors.Compacted` one of them answered, if any (no
        node that answers holds the changes this watch needs)."""
        compacted, served = self.compacted, self.served_in_round
        self.compacted, self.served_in_round = None, False
        if compacted is not None and not served:
            raise compacted

    @staticmethod
    def carries(item: SseEvent | SseComment | SseDropped | None) -> bool:
        """Whether a stream's ``item`` shows a node serving the watch: an
        event or a keep-alive. A stream that ends after its opening (a node
        cut off) counts as a failed try, so that a client that reaches only
        such nodes waits longer between tries and gives up in time."""
        return isinstance(item, SseEvent) or (
            isinstance(item, SseComment) and item.text.strip() == "keep-alive"
        )

    def accept(self, item: SseEvent | SseComment | SseDropped | None) -> schema.WatchEvent | None:
        """The change an item of the stream delivers, if any (raises
        :class:`~._errors.Compacted` when the watcher fell behind)."""
        if isinstance(item, SseDropped):
            raise ClientError(f"a {item.name} event of {item.size} bytes is larger than this client takes")
        if not isinstance(item, SseEvent):
            return None
        if item.name == "error":
            answer = error_answer(410, item.data.encode())
            raise Compacted(410, answer) if answer.code == schema.Code.COMPACTED else api_error(None, answer)
        if item.name not in ("put", "delete"):
            return None
        try:
            change = msgspec.json.decode(item.data, type=schema.WatchChange)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise ClientError(f"a malformed {item.name} event: {error}") from None
        revision = change.mod_revision
        if self.revision is not None and revision < self.revision:
            return None  # delivered before the reconnect
        if revision == self.revision:
            if change.key in self.delivered:
                return None
        else:
            self.revision = revision
            self.delivered = set()
        self.delivered.add(change.key)
        return schema.WatchEvent("put" if item.name == "put" else "delete", change)


def why_refused(error: ApiError) -> str:
    """An endpoint's refusal as ``NoEndpointAnswered`` lists it."""
    if isinstance(error, NotANode):
        return f"HTTP {error.status} that is not a raft-trio node's answer"
    return f"{error.status} {error.code}"


def retryable(error: ApiError) -> bool:
    return error.status in RETRYABLE_STATUSES or isinstance(error, NotANode)
