"""The replicated state machine: a key-value store with compare-and-set and
exactly-once retries. No I/O: commands in, results out, snapshots as bytes.

Every replica applies the same committed commands in the same order and
reaches the same state, so everything here is deterministic: time enters
only as the leader's clock reading carried inside each command (``ts``), which
is what expires remembered idempotency keys.

Exactly-once retries (the dissertation's client sessions, §6.3, in the form
HTTP clients know as ``Idempotency-Key``): a command carrying a token whose
result is remembered is not applied again; the first result is returned.
The table is part of the replicated state (and of snapshots), so a retry
that reaches a new leader is recognised too. It is bounded: at most
``max_sessions`` tokens, and each is forgotten ``session_ttl_ms`` after it
was first applied.
"""

from __future__ import annotations

import collections

import msgspec

#: Limits of the contract: keys 1-1024 bytes, values at most 1 MiB as UTF-8.
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20


class Put(msgspec.Struct, frozen=True, tag="put", array_like=True):
    key: str
    value: str
    #: Compare-and-set: when ``check`` is true the key must currently hold
    #: ``expect`` (None: the key must be absent).
    check: bool = False
    expect: str | None = None
    token: str | None = None
    ts: int = 0


class Delete(msgspec.Struct, frozen=True, tag="del", array_like=True):
    key: str
    token: str | None = None
    ts: int = 0


class Started(msgspec.Struct, frozen=True, tag="started", array_like=True):
    """Written by a leader the first time ``member`` acknowledges entries:
    that member has started once and holds a term, a vote and a log. A new
    (empty) data directory for it is refused from then on
    (:mod:`raft_trio.node.first_start`), as etcd refuses a member that
    "has already been bootstrapped"."""

    member: str
    ts: int = 0


#: What a client may ask for.
Command = Put | Delete
#: What the log holds.
LogCommand = Put | Delete | Started


class Written(msgspec.Struct, frozen=True, tag="written", array_like=True):
    key: str
    value: str
    index: int


class CasFailed(msgspec.Struct, frozen=True, tag="cas_failed", array_like=True):
    key: str
    current: str | None
    index: int


class Deleted(msgspec.Struct, frozen=True, tag="deleted", array_like=True):
    key: str
    deleted: bool
    index: int


Result = Written | CasFailed | Deleted


class _Session(msgspec.Struct, frozen=True, array_like=True):
    token: str
    ts: int
    result: Result


class _SnapshotState(msgspec.Struct, frozen=True):
    applied: int
    data: dict[str, tuple[str, int]]
    sessions: list[_Session]
    #: Members that have started (absent from snapshots of older versions).
    started: list[str] = msgspec.field(default_factory=list)


_command_encoder = msgspec.msgpack.Encoder()
_command_decoder: msgspec.msgpack.Decoder[LogCommand] = msgspec.msgpack.Decoder(LogCommand)
_snapshot_decoder: msgspec.msgpack.Decoder[_SnapshotState] = msgspec.msgpack.Decoder(_SnapshotState)


def encode_command(command: LogCommand) -> bytes:
    return _command_encoder.encode(command)


def decode_command(data: bytes) -> LogCommand:
    return _command_decoder.decode(data)


class KeyValueStore:
    def __init__(self, max_sessions: int = 100_000, session_ttl_ms: int = 10 * 60 * 1000) -> None:
        self.max_sessions = max_sessions
        self.session_ttl_ms = session_ttl_ms
        #: key -> (value, index of the write that produced it)
        self.data: dict[str, tuple[str, int]] = {}
        self.applied_index = 0
        self._sessions: collections.OrderedDict[str, _Session] = collections.OrderedDict()
        #: Members a leader saw acknowledge entries (:class:`Started`).
        self.started: set[str] = set()
        #: Characters of every key and value held: about the size of the
        #: next snapshot (what the space guard keeps room for).
        self.size = 0

    def get(self, key: str) -> tuple[str, int] | None:
        return self.data.get(key)

    def remembered(self, token: str) -> Result | None:
        """The result of an already applied command with this token."""
        session = self._sessions.get(token)
        return session.result if session is not None else None

    def apply(self, index: int, command: LogCommand) -> Result | None:
        """Apply the committed command at log ``index``."""
        assert index > self.applied_index, f"apply {index} after {self.applied_index}"
        self.applied_index = index
        if isinstance(command, Started):
            self.started.add(command.member)
            return None
        self._expire_sessions(command.ts)
        if command.token is not None:
            session = self._sessions.get(command.token)
            if session is not None:
                return session.result
        result = self._execute(index, command)
        if command.token is not None:
            self._sessions[command.token] = _Session(command.token, command.ts, result)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return result

    def skip(self, index: int) -> None:
        """A committed entry that is not a command (no-op, configuration)."""
        self.applied_index = max(self.applied_index, index)

    def _execute(self, index: int, command: Command) -> Result:
        current = self.data.get(command.key)
        if isinstance(command, Delete):
            if current is None:
                return Deleted(command.key, False, index)
            del self.data[command.key]
            self.size -= len(command.key) + len(current[0])
            return Deleted(command.key, True, index)
        if command.check:
            current_value = current[0] if current is not None else None
            if current_value != command.expect:
                return CasFailed(command.key, current_value, index)
        self.data[command.key] = (command.value, index)
        if current is None:
            self.size += len(command.key) + len(command.value)
        else:
            self.size += len(command.value) - len(current[0])
        return Written(command.key, command.value, index)

    def _expire_sessions(self, now_ms: int) -> None:
        horizon = now_ms - self.session_ttl_ms
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.ts >= horizon:
                break
            self._sessions.popitem(last=False)

    # -- snapshots -----------------------------------------------------------

    def snapshot(self) -> bytes:
        state = _SnapshotState(
            self.applied_index, self.data, list(self._sessions.values()), sorted(self.started)
        )
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        if not data:
            self.data = {}
            self._sessions = collections.OrderedDict()
            self.applied_index = 0
            self.started = set()
            self.size = 0
            return
        state = _snapshot_decoder.decode(data)
        self.applied_index = state.applied
        self.data = dict(state.data)
        self._sessions = collections.OrderedDict((s.token, s) for s in state.sessions)
        self.started = set(state.started)
        self.size = sum(len(key) + len(value) for key, (value, _) in self.data.items())
