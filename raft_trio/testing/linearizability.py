"""A linearizability checker for histories of the raft-trio key-value store.

A black-box test (Jepsen-style) runs concurrent clients against a cluster,
records each operation's invocation and completion time and its outcome, and
asks: is there a single order of the operations, consistent with real time
(an operation that completed before another was invoked comes first), in
which every operation's output is what a sequential key-value store would
have returned? If so, the history is *linearizable*; if not, the cluster
lost a write, served a stale read, or applied a compare-and-set twice.

Method (Wing & Gong's search, with the improvements of Lowe and of Horn &
Kroening, in the way Porcupine and Knossos use them):

* **Per key.** Linearizability is local (Herlihy & Wing): a history of a map
  of independent registers is linearizable iff each key's sub-history is.
  So each key is checked on its own; the search is exponential in the worst
  case, and splitting shrinks the exponent.
* **Depth-first search over the next operation to linearize.** The history
  is a list of call and return events in time order, kept as a doubly linked
  list from which a linearized operation is unlinked (and relinked on
  backtracking, dancing-links style). The operations that may go next are
  exactly those whose call comes before the first return still in the list:
  any later call started after some pending operation had already finished.
  The search tries each such candidate that the register model accepts,
  descends, and backtracks when the first pending return is reached with
  nothing placeable, i.e. that operation can no longer be linearized.
* **Cache (Lowe).** Two search paths that have linearized the same set of
  operations and left the register in the same state have the same future,
  so a configuration ``(set of linearized operations, register value)`` is
  explored once; sets are Python ints used as bitsets. This turns the
  factorial search into one bounded by the number of distinct
  configurations, which for real histories is close to linear.
* **Symmetry.** Of two identical operations (same kind, input and output,
  e.g. two overlapping reads of the same value), one whose interval starts
  and ends no later than the other's can take any place the other can, so
  only orders with it first are tried.
* **Observations are not choices.** An ``ok`` operation that leaves the
  register unchanged (a read, a failed compare-and-set, a delete that found
  nothing) and is legal now can be moved to the front of any linearization
  from here, so it is placed without trying alternatives. With many clients
  on one key this removes most of the branching.
* **Dead values.** The search counts, for each value, the pending ``ok``
  operations that need exactly that value in the register and the pending
  operations that could still write it. Overwriting a value that is still
  needed and can never come back is a dead end at once, instead of after
  exploring everything up to the needing operation's return. This is the
  usual wrong turn (two writes ordered the wrong way round), and, with
  unique written values as a test should use, it refutes a stale read or a
  lost write where it happens.

Every pruning rule above and below only skips orders when some
linearization of another shape, also tried, exists; a test compares the
verdicts with a brute-force search on thousands of small random histories.

Indeterminate (``info``) operations, which a client gave up on (a timeout, a
lost connection), may have taken effect at any time after their invocation or
never. As Knossos does, they are treated as completing at +inf with an
unknown output, and they are *optional*: the search succeeds once every
``ok`` operation is linearized. Each one that stays pending widens every
later step of the search, and a non-linearizable history with ``k`` of them
would cost ``2**k`` times as much; these reductions keep that in check, each
because some linearization that avoids the pruned shape always exists:

* an ``info`` read has no effect and nothing to check: it is dropped;
* an ``info`` operation is placed only where it changes the register (else
  leaving it out is the same), after the ``ok`` candidates have been tried
  (so a linearizable history places it only when something needs it), and
  only if the next operation placed depends on the register (a read, a
  compare-and-set, a delete with a known result): followed by a blind write
  or delete, its effect would vanish unseen;
* values that no operation can observe (never read nor expected by a
  compare-and-set, typically the values of writes that timed out) are
  indistinguishable, so the search stores them all as one abstract value;
  ``info`` operations that are then identical (same kind and input) are
  interchangeable and are used in invocation order only;
* the cache subsumes: a configuration is pruned when one with the same
  ``ok`` operations and register value, using a subset of its ``info``
  operations, was explored (an unused ``info`` operation may stay unused).

Complexity, per key with ``n`` operations and concurrency ``w`` (the
calls before the first pending return: the operations overlapping there,
plus pending ``info`` ones): a search step builds the candidate list in
``O(w)``, hashes an ``n``-bit set in ``O(n / 64)`` and compares against the
``info`` subsets cached for that (``ok`` set, value) pair. A linearizable
history is usually linearized with little backtracking: about ``O(n * w)``
work, some 10-20 microseconds per operation in CPython. A non-linearizable
one makes the search exhaust every configuration up to the first operation
that cannot be placed; that is exponential in the worst case (checking
linearizability is NP-complete, Gibbons & Korach 1997), bounded by the
number of distinct cached configurations, at most about
``n * 2**w * values``, and in practice a small multiple of ``n`` unless
many operations with repeated values, or many ``info`` ones, are pending at
once. A deadline turns an over-long search into :attr:`Outcome.UNKNOWN`,
which is never reported as a pass.

Real-time order is strict: ``a`` precedes ``b`` only if
``a.complete < b.invoke``. Operations whose interval ends exactly where the
other's begins count as concurrent, the lenient choice when clocks have
coarse resolution.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

#: A register value: raft-trio stores strings; anything hashable and
#: compared with ``==`` works. ``None`` always means "absent".
Value: TypeAlias = Hashable
Kind: TypeAlias = Literal["read", "write", "cas", "delete"]
Status: TypeAlias = Literal["ok", "fail", "info"]

_KINDS = frozenset(("read", "write", "cas", "delete"))
_STATUSES = frozenset(("ok", "fail", "info"))


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one key, as the test recorded it.

    ``input``: the value written (``write``); ``(expected, new)`` for
    ``cas``, where ``expected`` ``None`` means "the key must be absent";
    unused for ``read`` and ``delete``.

    ``output``: the value read (``None``: absent) for ``read``; ``True`` or
    ``False`` (the compare matched or not) for ``cas``; for ``delete``
    either ``None`` (not checked) or whether a value was there to delete;
    unused for ``write``. Ignored unless ``status`` is ``ok``.

    ``status``: ``ok`` completed with ``output``; ``fail`` certainly did not
    take effect (it is dropped); ``info`` unknown: it may have taken effect
    at any time after ``invoke``, or never (``complete`` is then ignored and
    taken as +inf). A compare-and-set that the store answered with a
    mismatch is ``ok`` with output ``False``, not ``fail`` as in Jepsen's
    convention: the mismatch is itself an observation, and is checked.
    """

    client: int | str
    key: str
    kind: Kind
    input: Value | None
    output: Value | None
    invoke: float
    complete: float = math.inf
    status: Status = "ok"

    def describe(self) -> str:
        """A one-line rendering for failure messages."""
        if self.kind == "read":
            what = "read" if self.status != "ok" else f"read -> {self.output!r}"
        elif self.kind == "write":
            what = f"write {self.input!r}"
        elif self.kind == "cas":
            expected, new = _cas_input(self)
            what = f"cas {expected!r} -> {new!r}"
            if self.status == "ok":
                what += f" = {self.output!r}"
        else:
            what = "delete" if self.output is None or self.status != "ok" else f"delete = {self.output!r}"
        end = "?" if self.status == "info" or math.isinf(self.complete) else f"{self.complete:.6f}"
        return f"client {self.client} {what} ({self.status}) [{self.invoke:.6f}, {end}]"


class Outcome(enum.Enum):
    OK = "ok"
    #: Not linearizable: some ``ok`` operation cannot be placed in any order.
    ILLEGAL = "illegal"
    #: The search hit its deadline; nothing is known.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class KeyReport:
    """The verdict for one key.

    ``linearized``: when ``OK``, a linearization (``ok`` operations and the
    ``info`` ones that took effect, in order); otherwise the longest
    linearizable prefix the search found (most ``ok`` operations placed),
    after which the register held ``state``. ``unplaced``: the ``ok``
    operations that were candidates right after that prefix and none of
    which could be placed next, and ``why`` for each the reason; empty when
    ``OK``.
    """

    key: str
    outcome: Outcome
    #: Operations checked: ``fail`` ones and indeterminate reads are dropped.
    operations: int
    linearized: tuple[Operation, ...]
    state: Value | None
    unplaced: tuple[Operation, ...]
    why: tuple[str, ...]
    explored: int
    elapsed_s: float

    def describe(self, tail: int = 8) -> str:
        """A readable account: the verdict, and for a failure the end of the
        longest prefix and why each candidate after it does not fit."""
        head = (
            f"key {self.key!r}: {self.outcome.value} ({self.operations} operations,"
            f" {self.explored} configurations explored, {self.elapsed_s:.3f}s)"
        )
        if self.outcome is Outcome.OK:
            return head
        verb = "found so far" if self.outcome is Outcome.UNKNOWN else "found"
        lines = [
            head,
            f"  longest linearizable prefix {verb}: {len(self.linearized)} operations,"
            f" after which the register holds {self.state!r}",
        ]
        if len(self.linearized) > tail:
            lines.append(f"    ... {len(self.linearized) - tail} earlier")
        lines.extend(f"    {op.describe()}" for op in self.linearized[-tail:])
        if self.outcome is Outcome.ILLEGAL:
            lines.append("  none of these operations can be placed next:")
            for op, why in zip(self.unplaced, self.why, strict=True):
                lines.append(f"    {op.describe()}: {why}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict for a whole history: ``ILLEGAL`` if any key is, else
    ``UNKNOWN`` if any key's search ran out of time, else ``OK``."""

    outcome: Outcome
    keys: Mapping[str, KeyReport]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def unknown(self) -> bool:
        return self.outcome is Outcome.UNKNOWN

    @property
    def message(self) -> str:
        counts = {o: sum(r.outcome is o for r in self.keys.values()) for o in Outcome}
        head = (
            f"history {self.outcome.value}: {len(self.keys)} keys"
            f" ({', '.join(f'{n} {o.value}' for o, n in counts.items() if n)}) in {self.elapsed_s:.3f}s"
        )
        bad = [r.describe() for r in self.keys.values() if r.outcome is not Outcome.OK]
        return "\n".join([head, *bad])

    def __str__(self) -> str:
        return self.message


def check_history(
    ops: Iterable[Operation],
    initial: Value | Mapping[str, Value | None] | None = None,
    timeout_s: float | None = 60.0,
) -> Result:
    """Check that a recorded history of the key-value store is linearizable.

    ``initial``: every key's value before the history (``None``: absent), or
    a mapping from key to initial value (missing keys: absent).
    ``timeout_s``: a deadline for the whole check (``None``: none). Keys are
    checked one after another in sorted order; a search looks at the clock
    every 1024 steps, and one still running at the deadline ends
    ``UNKNOWN`` (so a key with a short search may still get a verdict after
    the deadline). Raises ``ValueError`` for a malformed operation.

    For example::

        result = check_history(history, timeout_s=30)
        assert result.ok, result.message
    """
    started = time.monotonic()
    deadline = math.inf if timeout_s is None else started + timeout_s
    by_key: dict[str, list[Operation]] = {}
    for op in ops:
        _validate(op)
        if op.status == "fail" or (op.status == "info" and op.kind == "read"):
            continue
        by_key.setdefault(op.key, []).append(op)
    reports: dict[str, KeyReport] = {}
    for key in sorted(by_key):
        start: Value | None = initial.get(key) if isinstance(initial, Mapping) else initial
        reports[key] = _check_key(key, by_key[key], start, deadline)
    outcomes = {r.outcome for r in reports.values()}
    outcome = next((o for o in (Outcome.ILLEGAL, Outcome.UNKNOWN) if o in outcomes), Outcome.OK)
    return Result(outcome, reports, time.monotonic() - started)


# -- the register model ---------------------------------------------------------

# Each operation compiles to (code, a, b): what it requires of the register
# and what it leaves there. ``info`` operations compile to their effect only,
# since "no effect" is the same as not placing them.
_READ = 0  # legal iff state == a
_WRITE = 1  # state := a
_CAS = 2  # legal iff state == a; state := b
_CAS_FAILED = 3  # legal iff state != a
_DELETE = 4  # state := None
_DELETE_HIT = 5  # legal iff state is not None; state := None
_DELETE_MISS = 6  # legal iff state is None

#: The operations whose legality depends on the state. An info operation
#: is only worth placing right before one of these: followed by a blind
#: write or delete, its effect is erased unseen, and the linearization
#: without it is just as good. Requiring this keeps the search from trying
#: each timed-out write at every point of the history. (A shortest
#: linearization never has that shape, so none is lost.)
_RELIES = frozenset((_READ, _CAS, _CAS_FAILED, _DELETE_HIT, _DELETE_MISS))

#: The operations that leave the state as it is. One of these that is
#: ``ok`` and legal now can be placed now without trying alternatives: in
#: any linearization from here it can be moved to the front (nothing that
#: must precede it in real time is still unplaced, or it would not be a
#: candidate), and the others see the same states. Committing such reads
#: keeps a history with many concurrent clients from branching at each one.
_OBSERVES = frozenset((_READ, _CAS_FAILED, _DELETE_MISS))

_DELETES = frozenset((_DELETE, _DELETE_HIT))

_Compiled: TypeAlias = tuple[int, Value | None, Value | None]


def _cas_input(op: Operation) -> tuple[Value | None, Value | None]:
    if not isinstance(op.input, tuple) or len(op.input) != 2:
        raise ValueError(f"cas input must be (expected, new), got {op.input!r}: {op}")
    expected, new = op.input
    return expected, new


def _validate(op: Operation) -> None:
    if op.kind not in _KINDS:
        raise ValueError(f"unknown kind {op.kind!r}: {op}")
    if op.status not in _STATUSES:
        raise ValueError(f"unknown status {op.status!r}: {op}")
    if not math.isfinite(op.invoke):
        raise ValueError(f"invoke must be finite: {op}")
    if op.status == "ok" and not op.complete >= op.invoke:
        raise ValueError(f"completes before it was invoked: {op}")
    if op.kind == "cas":
        _cas_input(op)
        if op.status == "ok" and not isinstance(op.output, bool):
            raise ValueError(f"an ok cas needs output True or False: {op}")
    if op.kind == "write" and op.input is None:
        raise ValueError(f"write of None (use delete): {op}")
    if (
        op.kind == "delete"
        and op.status == "ok"
        and op.output is not None
        and not isinstance(op.output, bool)
    ):
        raise ValueError(f"an ok delete's output is None or a bool: {op}")


def _compile(op: Operation, stored: Value | None) -> _Compiled:
    """``stored``: the value the operation writes, as the search represents
    it (see _observed)."""
    if op.kind == "read":
        return (_READ, op.output, None)
    if op.kind == "write":
        return (_WRITE, stored, None)
    if op.kind == "cas":
        expected, _new = _cas_input(op)
        if op.status == "ok" and op.output is False:
            return (_CAS_FAILED, expected, None)
        return (_CAS, expected, stored)
    if op.status == "ok" and op.output is True:
        return (_DELETE_HIT, None, None)
    if op.status == "ok" and op.output is False:
        return (_DELETE_MISS, None, None)
    return (_DELETE, None, None)


def _observed(ops: Iterable[Operation]) -> set[Value | None]:
    """The values whose presence some operation can tell from other values:
    those read, and those a compare-and-set expects. Every other value is
    indistinguishable from any other such value (each read or compare of
    it gives the same answer), so the search merges them into one state;
    this keeps never-read writes (typically timed-out ones) from
    multiplying the configurations."""
    seen: set[Value | None] = set()
    for op in ops:
        if op.kind == "read":
            seen.add(op.output)
        elif op.kind == "cas":
            seen.add(_cas_input(op)[0])
    return seen


def _written(op: Operation) -> Value | None:
    """The value an operation stores when it takes effect."""
    if op.kind == "write":
        return op.input
    if op.kind == "cas":
        return _cas_input(op)[1]
    return None


def _step(compiled: _Compiled, state: Value | None) -> tuple[bool, Value | None]:
    """Apply one operation to the register: (legal here, new state)."""
    code, a, b = compiled
    if code == _READ:
        return state == a, state
    if code == _WRITE:
        return True, a
    if code == _CAS:
        return state == a, b
    if code == _CAS_FAILED:
        return state != a, state
    if code == _DELETE:
        return True, None
    if code == _DELETE_HIT:
        return state is not None, None
    return state is None, None


def _sets(op: Operation, value: Value | None) -> bool:
    """Whether ``op`` can leave ``value`` in the register."""
    if value is None:
        return op.kind == "delete" and not (op.status == "ok" and op.output is False)
    return op.kind in ("write", "cas") and _written(op) == value


def _needs(op: Operation, value: Value | None) -> bool:
    """Whether ``op`` is legal only when the register holds ``value``."""
    if op.status != "ok":
        return False
    if op.kind == "read":
        return op.output == value
    if op.kind == "cas":
        return op.output is True and _cas_input(op)[0] == value
    return op.kind == "delete" and op.output is False and value is None


def _why_not(op: Operation, state: Value | None, others: Sequence[Operation]) -> str:
    """Why ``op`` cannot be placed next in ``state`` when ``others`` are the
    operations still to place."""
    legal, after = _step(_compile(op, _written(op)), state)
    rest = [o for o in others if o is not op]
    needer = next((o for o in rest if _needs(o, state)), None)
    if legal and after != state and needer is not None and not any(_sets(o, state) for o in rest):
        return f"fits here, but overwrites {state!r}, which [{needer.describe()}] needs later"
    if legal:
        return "fits here, but then the rest of the history cannot be linearized"
    if op.kind == "read":
        return f"read {op.output!r} but the register holds {state!r}"
    if op.kind == "cas":
        expected, _new = _cas_input(op)
        if op.output is True:
            return f"succeeded expecting {expected!r} but the register holds {state!r}"
        return f"failed expecting {expected!r} but the register holds exactly that"
    return f"reported deleted={op.output!r} but the register holds {state!r}"


class _Unseen:
    """The state "some value that no operation observes"."""

    def __repr__(self) -> str:
        return "<a value never read>"


# -- the search -----------------------------------------------------------------

#: Check the deadline every this many search steps (time.monotonic is cheap,
#: but not free next to a step).
_CLOCK_EVERY = 1024


def _check_key(key: str, ops: Sequence[Operation], initial: Value | None, deadline: float) -> KeyReport:
    """Search for a linearization of one key's operations."""
    started = time.monotonic()
    n = len(ops)
    observed = _observed(ops)
    unseen = _Unseen()

    def abstract(value: Value | None) -> Value | None:
        return value if value is None or value in observed else unseen

    compiled = [_compile(op, abstract(_written(op))) for op in ops]
    required = [op.status == "ok" for op in ops]
    relies = [compiled[i][0] in _RELIES for i in range(n)]
    observes = [required[i] and compiled[i][0] in _OBSERVES for i in range(n)]
    # Dead values: ``needs[v]`` counts the unplaced ok operations that
    # require the register to hold exactly v (reads of v, successful
    # compare-and-sets expecting v), ``makes[v]`` the unplaced operations
    # that can set it to v. Overwriting v while some operation still needs
    # it and nothing can set it again is a dead end, found right there
    # rather than after exploring everything up to that operation's return:
    # the usual mistake of the search, ordering two writes the wrong way
    # round, costs O(1) instead of a subtree.
    needs: dict[Value | None, int] = {}
    makes: dict[Value | None, int] = {}
    needed: list[tuple[Value | None, ...]] = []
    made: list[tuple[Value | None, ...]] = []
    for i in range(n):
        code, a, b = compiled[i]
        needed.append(
            (None,) if code == _DELETE_MISS else (a,) if code in (_READ, _CAS) and required[i] else ()
        )
        made.append((a,) if code == _WRITE else (b,) if code == _CAS else (None,) if code in _DELETES else ())
        for v in needed[i]:
            needs[v] = needs.get(v, 0) + 1
        for v in made[i]:
            makes[v] = makes.get(v, 0) + 1
    # One bit per operation, in separate ``ok`` and ``info`` bitsets so the
    # cache can compare the ``info`` parts by inclusion. Bit 0 of the info
    # set is the flag "the last operation placed is an info one", which
    # obliges the next to rely on the state (see _RELIES).
    bit = [0] * n
    n_required, n_info = 0, 1
    for i in range(n):
        if required[i]:
            bit[i] = 1 << n_required
            n_required += 1
        else:
            bit[i] = 1 << n_info
            n_info += 1
    # Identical operations are interchangeable where their intervals allow:
    # op i may be placed only once its "twin" is (twin_before[i]: a bit in
    # the ok or info set, as op i's own). For info ops, the previous
    # identical one by invocation; for ok ops, the previous identical one by
    # (invoke, complete) if it also completes no later, so that it can take
    # any place i could. Swapping two such twins in a linearization changes
    # nothing else, so some linearization respects every twin order.
    twin_before = [0] * n
    last_twin: dict[tuple[bool, int, Value | None, Value | None], int] = {}
    for i in sorted(range(n), key=lambda i: (ops[i].invoke, ops[i].complete)):
        twin = (required[i], *compiled[i])
        j = last_twin.get(twin)
        if j is not None and (not required[i] or ops[j].complete <= ops[i].complete):
            twin_before[i] = bit[j]
        last_twin[twin] = i

    # The event list: node 2i is op i's call, 2i+1 its return (ok ops only;
    # an info op returns at +inf, never). Calls sort before returns at equal
    # times, making touching intervals concurrent.
    events = [(op.invoke, 0, 2 * i) for i, op in enumerate(ops)]
    events += [(op.complete, 1, 2 * i + 1) for i, op in enumerate(ops) if required[i]]
    events.sort()
    head, end = 2 * n, -1
    nxt = [end] * (2 * n + 1)
    prv = [end] * (2 * n + 1)
    previous = head
    for _time, _kind, node in events:
        nxt[previous] = node
        prv[node] = previous
        previous = node

    def lift(i: int) -> None:
        for node in (2 * i, 2 * i + 1) if required[i] else (2 * i,):
            nxt[prv[node]] = nxt[node]
            if nxt[node] != end:
                prv[nxt[node]] = prv[node]

    def unlift(i: int) -> None:
        for node in (2 * i + 1, 2 * i) if required[i] else (2 * i,):
            nxt[prv[node]] = node
            if nxt[node] != end:
                prv[nxt[node]] = node

    def candidates() -> list[int]:
        """The operations that may be linearized next: those called before
        the first pending return, ``ok`` ones first; or only one of them,
        when an observing one (see _OBSERVES) can go now."""
        ok_ops: list[int] = []
        info_ops: list[int] = []
        node = nxt[head]
        while node != end and not node & 1:
            i = node >> 1
            if not required[i]:
                info_ops.append(i)
            elif (
                observes[i]
                and _step(compiled[i], state)[0]
                and not (twin_before[i] and not ok_set & twin_before[i])
            ):
                return [i]
            else:
                ok_ops.append(i)
            node = nxt[node]
        ok_ops.extend(info_ops)
        return ok_ops

    state: Value | None = abstract(initial)
    ok_set = info_set = 0
    placed = 0  # ok operations linearized
    path: list[int] = []
    # A frame: the candidates at that depth, the next one to try, the
    # operation linearized below it and the configuration before it.
    frames: list[tuple[list[int], int, int, Value | None, int, int]] = []
    cache: dict[tuple[int, Value | None], list[int]] = {(0, state): [0]}
    explored = 1
    best_path: list[int] = []
    best_placed = -1
    outcome: Outcome | None = Outcome.OK if n_required == 0 else None
    cands = candidates()
    index = 0
    clock = _CLOCK_EVERY
    while outcome is None:
        clock -= 1
        if not clock:
            clock = _CLOCK_EVERY
            if time.monotonic() > deadline:
                outcome = Outcome.UNKNOWN
                break
        if index < len(cands):
            i = cands[index]
            index += 1
            if info_set & 1 and not relies[i]:
                continue
            if twin_before[i] and not (ok_set if required[i] else info_set) & twin_before[i]:
                continue
            legal, new_state = _step(compiled[i], state)
            if not legal:
                continue
            if required[i]:
                new_ok, new_info = ok_set | bit[i], info_set & ~1
            elif new_state == state:
                continue
            else:
                new_ok, new_info = ok_set, info_set | bit[i] | 1
            if new_state != state:
                for v in needed[i]:
                    needs[v] -= 1
                for v in made[i]:
                    makes[v] -= 1
                dead = needs.get(state, 0) > 0 and makes.get(state, 0) == 0
                for v in needed[i]:
                    needs[v] += 1
                for v in made[i]:
                    makes[v] += 1
                if dead:
                    continue
            seen = cache.get((new_ok, new_state))
            if seen is None:
                cache[(new_ok, new_state)] = [new_info]
            elif any(not m & ~new_info for m in seen):
                continue
            else:
                seen.append(new_info)
            explored += 1
            frames.append((cands, index, i, state, ok_set, info_set))
            for v in needed[i]:
                needs[v] -= 1
            for v in made[i]:
                makes[v] -= 1
            path.append(i)
            lift(i)
            state, ok_set, info_set = new_state, new_ok, new_info
            if required[i]:
                placed += 1
                if placed == n_required:
                    outcome = Outcome.OK
                    break
            cands = candidates()
            index = 0
        else:
            # Dead end: the first pending return cannot be linearized here.
            if placed > best_placed:
                best_placed, best_path = placed, path.copy()
            if not frames:
                outcome = Outcome.ILLEGAL
                break
            cands, index, i, state, ok_set, info_set = frames.pop()
            path.pop()
            unlift(i)
            placed -= required[i]
            for v in needed[i]:
                needs[v] += 1
            for v in made[i]:
                makes[v] += 1

    unplaced: tuple[Operation, ...] = ()
    why: tuple[str, ...] = ()
    if outcome is Outcome.OK or placed > best_placed:
        best_path = path
    # The search's states are abstract; replay the prefix for the real value.
    best_state = initial
    for i in best_path:
        _legal, best_state = _step(_compile(ops[i], _written(ops[i])), best_state)
    if outcome is not Outcome.OK:
        # The candidates right after the longest prefix: unplaced operations
        # called no later than the first unplaced ok operation's return.
        done = set(best_path)
        left = [i for i in range(n) if i not in done and required[i]]
        frontier = min((ops[i].complete for i in left), default=math.inf)
        unplaced = tuple(ops[i] for i in left if ops[i].invoke <= frontier)
        others = [ops[i] for i in range(n) if i not in done]
        why = tuple(_why_not(op, best_state, others) for op in unplaced)
    return KeyReport(
        key=key,
        outcome=outcome,
        operations=n,
        linearized=tuple(ops[i] for i in best_path),
        state=best_state,
        unplaced=unplaced,
        why=why,
        explored=explored,
        elapsed_s=time.monotonic() - started,
    )
