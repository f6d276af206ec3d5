"""The log and hard state in SQLite: schema, row checksums, transactions.

This module only speaks SQL; deciding *what* to write (the MemoryStorage
semantics) is :mod:`._durable`'s job, and deciding what to trust on start is
:mod:`._recovery`'s.

Why SQLite: it is in the standard library and trusted for crash safety. In
WAL mode with ``synchronous=FULL`` a COMMIT returns only after the WAL is
fsynced, and a torn WAL tail (a crash mid-write) is discarded by SQLite's own
recovery, so each transaction is all or nothing. Every row also carries a
CRC32 of its content: SQLite does not checksum pages, and a flipped bit in
an entry must be detected, not served.

Schema::

    entries(idx INTEGER PRIMARY KEY, term, kind, data BLOB, crc)  one row per entry
    state(key TEXT PRIMARY KEY, value BLOB, crc)                 'hard_state', 'snapshot'

Space: ``auto_vacuum=INCREMENTAL`` lets :meth:`SqliteLog.reclaim` give the
pages of a compacted prefix back to the file system, and
``journal_size_limit`` truncates the WAL after each checkpoint, so the files
stay near the size of the live log.

Threads: the connection is opened with ``check_same_thread=False`` because
the runtime opens storage on one thread and writes from its writer thread;
the caller must never use it from two threads at once.
"""

from __future__ import annotations

import dataclasses
import gc
import sqlite3
import struct
import urllib.parse
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import msgspec

from raft_trio.core import Entry, EntryKind, HardState

from ._datadir import FORMAT_VERSION
from ._errors import CorruptionError, DataDirError

#: The WAL is truncated back to this size after a checkpoint (a large batch
#: may grow it far beyond; it need not stay that big).
JOURNAL_SIZE_LIMIT = 4 << 20
#: What the WAL may take on top of the database between checkpoints: about
#: 1,000 pages (SQLite's autocheckpoint) in the WAL, and as much again
#: while a checkpoint copies them into the database file.
WAL_HEADROOM_BYTES = 2 * JOURNAL_SIZE_LIMIT

_ROW_HEAD = struct.Struct(">QQI")
_KINDS = {int(kind): kind for kind in EntryKind}
_HARD_STATE = "hard_state"
_SNAPSHOT = "snapshot"

_hs_encoder = msgspec.msgpack.Encoder()
_hs_decoder = msgspec.msgpack.Decoder(HardState)
_ref_decoder = msgspec.msgpack.Decoder(tuple[int, int])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx  INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    data BLOB    NOT NULL,
    crc  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key   TEXT PRIMARY KEY,
    value BLOB    NOT NULL,
    crc   INTEGER NOT NULL
);
"""


def row_crc(index: int, term: int, kind: int, data: bytes) -> int:
    """CRC32 of an entry row: its index is covered too, so a row that moved
    (a misdirected write) fails as surely as one whose bytes changed."""
    return zlib.crc32(data, zlib.crc32(_ROW_HEAD.pack(index, term, kind)))


def _state_crc(key: str, value: bytes) -> int:
    return zlib.crc32(value, zlib.crc32(key.encode()))


@dataclasses.dataclass
class Scan:
    """The trustworthy rows after some index, and why the scan stopped
    early if it did: ``bad_index`` is the first row not to trust (a
    checksum failure or a gap), from which the log must be cut."""

    entries: list[Entry]
    bad_index: int | None = None
    reason: str = ""


def _read_only_uri(path: Path) -> str:
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"


class _Transaction:
    """``BEGIN IMMEDIATE`` on entry; ``COMMIT`` on a clean exit, else
    ``ROLLBACK``. A plain class, made once a connection: every Ready runs
    one, and a generator-based context manager cost several times more."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:
            # SQLite rolls a transaction back by itself after some errors
            # (SQLITE_FULL while a large batch spills to the WAL): a ROLLBACK
            # then fails, and its error would hide the one that matters.
            self._conn.execute("ROLLBACK")


class SqliteLog:
    """One SQLite database holding the log and the hard state."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        #: A WAL left by a crash: the writes not yet in the database.
        self._found_wal = path.with_name(path.name + "-wal").exists()
        if read_only:
            # mode=ro: SQLite opens the database read-only and never
            # writes it or its WAL (it may rebuild the WAL index in -shm,
            # which is derived data), so a dead node's directory can be
            # inspected exactly as the crash left it.
            self._conn = sqlite3.connect(
                _read_only_uri(path), uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            # isolation_level=None: no implicit transactions; we BEGIN and
            # COMMIT ourselves so one Ready is exactly one transaction.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._transaction = _Transaction(self._conn)
        try:
            if read_only:
                self._check_version()
            else:
                self._setup()
        except BaseException:
            self.close(keep_wal=True)
            raise

    def _check_version(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if self.has_tables() and version != FORMAT_VERSION:
            raise DataDirError(
                f"{self.path} has format version {version}; this raft-trio reads version "
                f"{FORMAT_VERSION} only"
            )

    def _setup(self) -> None:
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if has_tables and version != FORMAT_VERSION:
            raise DataDirError(
                f"{self.path} has format version {version}; this raft-trio reads version "
                f"{FORMAT_VERSION} only. Nothing was changed."
            )
        if not has_tables:
            # auto_vacuum must be chosen before the first table exists.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DataDirError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        if not has_tables:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")

    def close(self, *, keep_wal: bool = False) -> None:
        """Close the connection; SQLite checkpoints the WAL into the
        database and removes it. ``keep_wal`` (a refused start: nothing is
        changed, and the WAL is the evidence) leaves both as they are: a
        read-only connection, which cannot checkpoint, closes last. (A WAL
        this connection made, empty, goes as usual.)"""
        if not keep_wal or not self._found_wal:
            self._conn.close()
            return
        try:
            keeper = sqlite3.connect(_read_only_uri(self.path), uri=True, isolation_level=None)
            keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()  # it joins the WAL
        except sqlite3.Error:
            self._conn.close()
            return
        try:
            self._conn.close()
        finally:
            keeper.close()

    # -- transactions -------------------------------------------------------

    def transaction(self) -> _Transaction:
        """One write transaction: everything inside is durable together
        when it returns (one fsync of the WAL), or not at all."""
        return self._transaction

    # -- writes (inside a transaction) ----------------------------------------

    def put_hard_state(self, hard_state: HardState) -> None:
        self._put(_HARD_STATE, _hs_encoder.encode(hard_state))

    def put_snapshot_ref(self, index: int, term: int) -> None:
        """Record which snapshot file stands for the compacted log: the
        commit point of a compaction or a snapshot install."""
        self._put(_SNAPSHOT, _hs_encoder.encode((index, term)))

    def _put(self, key: str, value: bytes) -> None:
        # An upsert, not INSERT OR REPLACE: REPLACE deletes the row and
        # inserts it again, rewriting the key's entry in the index of the
        # TEXT PRIMARY KEY too; an update in place leaves that index page
        # alone, so a Ready's commit writes one WAL frame (4 KiB) fewer.
        self._conn.execute(
            "INSERT INTO state (key, value, crc) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, crc = excluded.crc",
            (key, value, _state_crc(key, value)),
        )

    def insert(self, entries: Iterable[Entry]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO entries (idx, term, kind, data, crc) VALUES (?, ?, ?, ?, ?)",
            (
                (e.index, e.term, int(e.kind), e.data, row_crc(e.index, e.term, int(e.kind), e.data))
                for e in entries
            ),
        )

    def delete_from(self, index: int) -> None:
        """Delete every entry at or after ``index`` (a log truncation)."""
        self._conn.execute("DELETE FROM entries WHERE idx >= ?", (index,))

    def delete_through(self, index: int) -> None:
        """Delete every entry at or before ``index`` (a compacted prefix)."""
        self._conn.execute("DELETE FROM entries WHERE idx <= ?", (index,))

    def delete_all(self) -> None:
        self._conn.execute("DELETE FROM entries")

    # -- reads ------------------------------------------------------------------

    def has_tables(self) -> bool:
        """False for a database whose schema was never created."""
        return bool(self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0)

    def is_empty(self) -> bool:
        """True for a database nothing was ever written to (a new node)."""
        row = self._conn.execute(
            "SELECT (SELECT count(*) FROM state) + (SELECT count(*) FROM entries)"
        ).fetchone()
        return bool(row[0] == 0)

    def read_hard_state(self) -> HardState | None:
        value = self._get(_HARD_STATE)
        if value is None:
            return None
        try:
            return _hs_decoder.decode(value)
        except msgspec.DecodeError as exc:
            raise CorruptionError(f"{self.path}: undecodable hard state ({exc})") from exc

    def read_snapshot_ref(self) -> tuple[int, int] | None:
        value = self._get(_SNAPSHOT)
        if value is None:
            return None
        try:
            return _ref_decoder.decode(value)
        except msgspec.DecodeError as exc:
            raise CorruptionError(f"{self.path}: undecodable snapshot pointer ({exc})") from exc

    def _get(self, key: str) -> bytes | None:
        row = self._conn.execute("SELECT value, crc FROM state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, crc = bytes(row[0]), row[1]
        if _state_crc(key, value) != crc:
            # Term and vote cannot be cut like a log tail: forgetting a vote
            # could let this node vote twice in one term.
            raise CorruptionError(
                f"{self.path}: the {key.replace('_', ' ')} failed its checksum; refusing to start "
                "(a lost vote could elect two leaders). Restore the data directory or replace the node."
            )
        return value

    def term_at(self, index: int) -> int | None:
        row = self._conn.execute("SELECT term FROM entries WHERE idx = ?", (index,)).fetchone()
        return None if row is None else int(row[0])

    def bounds(self) -> tuple[int, int] | None:
        """(lowest, highest) index of the stored rows, None if there are none."""
        # Two subqueries: SQLite answers a lone min() or max() of the
        # primary key from the b-tree's ends, but scans the whole table
        # for "SELECT min(idx), max(idx)".
        row = self._conn.execute(
            "SELECT (SELECT min(idx) FROM entries), (SELECT max(idx) FROM entries)"
        ).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def scan(self, after: int) -> Scan:
        """Read and verify the rows after ``after``: they must follow it
        contiguously and pass their checksums. Stops at the first that does
        not.

        This loop is most of a restart's time, so it is written for speed:
        names bound to locals, :func:`row_crc` inlined, the kind looked up
        in a dict, and the cyclic garbage collector paused while it runs:
        a million new entries would otherwise trigger collections that
        traverse every object allocated so far again and again (with it
        running, building the entries took 7 times as long). Entries
        hold no reference cycles, so pausing it frees nothing late."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._scan(after)
        finally:
            if was_enabled:
                gc.enable()

    def _scan(self, after: int) -> Scan:
        entries: list[Entry] = []
        append = entries.append
        pack = _ROW_HEAD.pack
        crc32 = zlib.crc32
        kinds = _KINDS
        expected = after + 1
        cursor = self._conn.execute(
            "SELECT idx, term, kind, data, crc FROM entries WHERE idx > ? ORDER BY idx", (after,)
        )
        for index, term, kind, data, crc in cursor:
            if index != expected:
                return Scan(entries, expected, f"entry {expected} is missing (next row is {index})")
            data = bytes(data)
            if crc32(data, crc32(pack(index, term, kind))) != crc:  # row_crc
                return Scan(entries, index, f"entry {index} failed its checksum")
            entry_kind = kinds.get(kind)
            if entry_kind is None:
                return Scan(entries, index, f"entry {index} has unknown kind {kind}")
            append(Entry(index, term, entry_kind, data))
            expected += 1
        return Scan(entries)

    # -- space ----------------------------------------------------------------

    def reclaim(self, min_free_pages: int = 256) -> None:
        """Give free pages back to the file system once there are enough of
        them to matter (a compacted prefix, a replaced log). Below that,
        SQLite reuses them for new entries anyway."""
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free >= min_free_pages:
            # Through executescript: stepped once by execute(), the pragma
            # frees a single page.
            self._conn.executescript("PRAGMA incremental_vacuum")

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
