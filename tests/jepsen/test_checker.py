"""The linearizability checker, on histories whose verdict is known: hand-written
ones for each anomaly a broken Raft store produces (stale read, lost write,
double compare-and-set, invented value, resurrected absence), and randomized
ones generated from a real sequential register, which must pass, and must fail
once one read is corrupted. A checker that passes everything is worthless, so
every pass test has a failing twin."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Hashable, Mapping

import pytest

from raft_trio.testing import Operation, Outcome, Result, Status, check_history

INF = math.inf


# -- building histories ------------------------------------------------------------


def read(
    client: int, t0: float, t1: float, value: str | None, key: str = "x", status: Status = "ok"
) -> Operation:
    return Operation(client, key, "read", None, value, t0, t1, status)


def write(client: int, t0: float, t1: float, value: str, key: str = "x", status: Status = "ok") -> Operation:
    return Operation(client, key, "write", value, None, t0, t1, status)


def cas(
    client: int,
    t0: float,
    t1: float,
    expected: str | None,
    new: str,
    ok: bool | None,
    key: str = "x",
    status: Status = "ok",
) -> Operation:
    return Operation(client, key, "cas", (expected, new), ok, t0, t1, status)


def delete(
    client: int, t0: float, t1: float, key: str = "x", status: Status = "ok", deleted: bool | None = None
) -> Operation:
    return Operation(client, key, "delete", None, deleted, t0, t1, status)


Initial = Hashable | Mapping[str, Hashable | None] | None


def assert_ok(history: list[Operation], initial: Initial = None) -> Result:
    result = check_history(history, initial=initial)
    assert result.ok, result.message
    assert result.outcome is Outcome.OK
    return result


def assert_illegal(history: list[Operation], initial: Initial = None) -> Result:
    result = check_history(history, initial=initial)
    assert result.outcome is Outcome.ILLEGAL, result.message
    assert not result.ok
    return result


# -- histories that must pass ------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    assert_ok([])


def test_sequential_history() -> None:
    assert_ok(
        [
            read(1, 0, 1, None),
            write(1, 2, 3, "a"),
            read(2, 4, 5, "a"),
            write(2, 6, 7, "b"),
            read(1, 8, 9, "b"),
            delete(1, 10, 11, deleted=True),
            read(2, 12, 13, None),
            delete(2, 14, 15, deleted=False),
        ]
    )


def test_concurrent_writes_and_reads_that_can_be_ordered() -> None:
    # Order: w(b) r->b w(a) r->a; w(a)'s long interval lets it come last.
    assert_ok(
        [
            write(1, 0, 10, "a"),
            write(2, 1, 9, "b"),
            read(3, 2, 3, "b"),
            read(4, 4, 5, "a"),
            read(5, 11, 12, "a"),
        ]
    )


def test_reads_concurrent_with_a_write_may_see_either_value() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            write(2, 2, 10, "b"),
            read(3, 3, 4, "a"),
            read(4, 3, 5, "b"),
            read(5, 6, 7, "b"),
            read(6, 11, 12, "b"),
        ]
    )


def test_touching_intervals_count_as_concurrent() -> None:
    # The read is invoked at the instant the write completes: either order.
    assert_ok([write(1, 0, 1, "a"), read(2, 1, 2, None)])
    assert_illegal([write(1, 0, 1, "a"), read(2, 1.5, 2, None)])


def test_indeterminate_write_whose_effect_is_seen_later() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            write(2, 2, INF, "b", status="info"),
            read(3, 3, 4, "a"),  # not yet
            read(3, 50, 51, "b"),  # long after the client gave up
            read(4, 60, 61, "b"),
        ]
    )


def test_indeterminate_write_never_seen() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            write(2, 2, 3, "b", status="info"),  # complete is ignored for info
            read(3, 4, 5, "a"),
            read(3, 100, 101, "a"),
        ]
    )


def test_failed_operations_are_dropped() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            write(2, 2, 3, "never", status="fail"),
            cas(2, 4, 5, "a", "never", None, status="fail"),
            read(3, 6, 7, "a"),
        ]
    )


def test_indeterminate_reads_are_dropped() -> None:
    assert_ok([write(1, 0, 1, "a"), read(2, 2, INF, "garbage", status="info"), read(3, 4, 5, "a")])


def test_cas_success_and_failure_chain() -> None:
    assert_ok(
        [
            cas(1, 0, 1, None, "a", True),  # create if absent
            cas(2, 2, 3, None, "b", False),
            cas(1, 4, 5, "a", "b", True),
            cas(2, 6, 7, "a", "c", False),
            read(3, 8, 9, "b"),
            cas(3, 10, 11, "b", "c", True),
            delete(1, 12, 13),
            cas(2, 14, 15, "c", "d", False),
            cas(2, 16, 17, None, "d", True),
            read(1, 18, 19, "d"),
        ]
    )


def test_overlapping_cas_with_same_expected_one_wins() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            cas(2, 2, 5, "a", "b", True),
            cas(3, 3, 6, "a", "c", False),
            read(4, 7, 8, "b"),
        ]
    )


def test_indeterminate_cas_and_delete_take_effect_when_needed() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            cas(2, 2, INF, "a", "b", None, status="info"),
            read(3, 10, 11, "b"),
            delete(4, 12, INF, status="info"),
            read(3, 20, 21, "b"),
            read(3, 30, 31, None),
        ]
    )


def test_indeterminate_cas_that_could_not_apply_is_harmless() -> None:
    assert_ok(
        [
            write(1, 0, 1, "a"),
            cas(2, 2, INF, "zzz", "b", None, status="info"),
            read(3, 10, 11, "a"),
        ]
    )


def test_delete_then_read_absent() -> None:
    assert_ok([write(1, 0, 1, "a"), delete(2, 2, 3), read(1, 4, 5, None), read(2, 4, 5, None)])


def test_keys_are_independent_and_initial_values_apply() -> None:
    result = assert_ok(
        [
            read(1, 0, 1, "init-x", key="x"),
            read(2, 0, 1, None, key="y"),
            write(3, 2, 3, "b", key="y"),
            read(1, 4, 5, "b", key="y"),
            read(2, 4, 5, "init-x", key="x"),
        ],
        initial={"x": "init-x"},
    )
    assert set(result.keys) == {"x", "y"}
    assert_ok([read(1, 0, 1, "v", key="p"), read(1, 0, 1, "v", key="q")], initial="v")


def test_ok_result_carries_a_linearization() -> None:
    history = [write(1, 0, 10, "a"), write(2, 1, 9, "b"), read(3, 2, 3, "b"), read(4, 4, 5, "a")]
    report = assert_ok(history).keys["x"]
    assert [op.describe() for op in report.linearized] == [
        op.describe() for op in (history[1], history[2], history[0], history[3])
    ]


# -- histories that must be rejected -----------------------------------------------


def test_stale_read_is_rejected() -> None:
    # The write of "b" completed before the read began; the read saw "a".
    result = assert_illegal(
        [
            write(1, 0, 1, "a"),
            write(2, 2, 3, "b"),
            read(3, 4, 5, "a"),
        ]
    )
    report = result.keys["x"]
    # After write 'a', write 'b' must come next (it completed before the read
    # began), but would destroy the 'a' the read returns.
    assert [op.kind for op in report.unplaced] == ["write"]
    assert "overwrites 'a', which [client 3 read -> 'a'" in result.message


def test_read_going_back_in_time_is_rejected() -> None:
    # One reader saw the new value; a later read, by another client, the old.
    assert_illegal(
        [
            write(1, 0, 1, "a"),
            write(2, 2, 20, "b"),
            read(3, 3, 4, "b"),
            read(4, 5, 6, "a"),
        ]
    )


def test_lost_write_is_rejected() -> None:
    assert_illegal(
        [
            write(1, 0, 1, "a"),
            write(1, 2, 3, "b"),  # acknowledged, then lost
            read(2, 4, 5, "a"),
            read(2, 6, 7, "a"),
        ]
    )


def test_double_cas_is_rejected() -> None:
    result = assert_illegal(
        [
            write(1, 0, 1, "a"),
            cas(2, 2, 5, "a", "b", True),
            cas(3, 3, 6, "a", "c", True),
        ]
    )
    assert "overwrites 'a', which [client 3 cas 'a' -> 'c'" in result.message


def test_failed_cas_that_should_have_succeeded_is_rejected() -> None:
    assert_illegal([write(1, 0, 1, "a"), cas(2, 2, 3, "a", "b", False)])


def test_read_of_a_value_never_written_is_rejected() -> None:
    assert_illegal([write(1, 0, 1, "a"), read(2, 2, 3, "zzz")])


def test_read_absent_after_a_write_is_rejected() -> None:
    assert_illegal([write(1, 0, 1, "a"), read(2, 2, 3, "a"), read(3, 4, 5, None)])


def test_delete_reporting_a_miss_on_a_present_key_is_rejected() -> None:
    assert_illegal([write(1, 0, 1, "a"), delete(2, 2, 3, deleted=False)])


def test_indeterminate_write_cannot_explain_an_earlier_read() -> None:
    # An info write may take effect late, never before it was invoked.
    assert_illegal([write(1, 0, 1, "a"), read(2, 2, 3, "b"), write(3, 4, INF, "b", status="info")])


def test_indeterminate_write_takes_effect_at_most_once() -> None:
    assert_illegal(
        [
            write(1, 0, 1, "a"),
            write(2, 2, INF, "b", status="info"),
            read(3, 3, 4, "b"),
            write(1, 5, 6, "c"),
            read(3, 7, 8, "b"),
        ]
    )


def test_failed_write_is_not_visible() -> None:
    assert_illegal([write(1, 0, 1, "a"), write(2, 2, 3, "b", status="fail"), read(3, 4, 5, "b")])


def test_only_the_broken_key_is_reported() -> None:
    result = assert_illegal(
        [write(1, 0, 1, "a", key="good"), read(2, 2, 3, "a", key="good"), read(3, 0, 1, "z", key="bad")]
    )
    assert result.keys["good"].outcome is Outcome.OK
    assert result.keys["bad"].outcome is Outcome.ILLEGAL
    assert "key 'bad'" in result.message and "key 'good': ok" not in result.message


def test_malformed_operations_are_refused() -> None:
    with pytest.raises(ValueError, match="completes before"):
        check_history([read(1, 5, 4, None)])
    with pytest.raises(ValueError, match="cas input"):
        check_history([Operation(1, "x", "cas", "a", True, 0, 1)])
    with pytest.raises(ValueError, match="True or False"):
        check_history([cas(1, 0, 1, "a", "b", None)])
    with pytest.raises(ValueError, match="unknown status"):
        check_history([Operation(1, "x", "read", None, None, 0, 1, "maybe")])  # type: ignore[arg-type]


# -- the deadline ------------------------------------------------------------------


def hard_history(writers: int = 22) -> list[Operation]:
    """Many mutually concurrent writes (nested intervals, so that none can
    stand in for another) and then a read of a value none of them wrote:
    illegal, but only after trying every subset of the writes."""
    history = [write(c, c, 100 - c, f"v{c}", key="hard") for c in range(writers)]
    return [*history, read(writers, 200, 201, "nobody-wrote-this", key="hard")]


def test_too_slow_search_is_unknown_not_ok() -> None:
    started = time.monotonic()
    result = check_history(hard_history(), timeout_s=0.2)
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.UNKNOWN, result.message
    assert not result.ok and result.unknown
    assert result.keys["hard"].outcome is Outcome.UNKNOWN
    assert "unknown" in result.message
    assert elapsed < 2, elapsed


def test_illegal_key_wins_over_a_timed_out_one() -> None:
    # Keys are checked in sorted order: "bad" before "hard" uses the budget.
    history = [*hard_history(), write(1, 0, 1, "a", key="bad"), read(2, 2, 3, "b", key="bad")]
    result = check_history(history, timeout_s=0.2)
    assert result.outcome is Outcome.ILLEGAL, result.message
    assert result.keys["bad"].outcome is Outcome.ILLEGAL
    assert result.keys["hard"].outcome is Outcome.UNKNOWN


# -- randomized histories from a real register -------------------------------------


@dataclasses.dataclass
class Planned:
    client: int
    invoke: float
    complete: float
    at: float  # when it takes effect: the true linearization point


def generate(
    rng: random.Random,
    ops: int,
    keys: int,
    clients: int,
    p_info: float = 0.02,
    p_fail: float = 0.01,
) -> list[Operation]:
    """A history of a real sequential store: each client runs operations one
    after another; each takes effect at a random instant inside its interval,
    and its output is what the store held then. Values written are unique, so
    a corruption can be made certainly impossible."""
    planned: list[Planned] = []
    for client in range(clients):
        t = rng.uniform(0, 1)
        for _ in range(ops // clients):
            duration = rng.expovariate(1.0)
            planned.append(Planned(client, t, t + duration, rng.uniform(t, t + duration)))
            t += duration + rng.expovariate(2.0)
    planned.sort(key=lambda p: p.at)
    store: dict[str, str] = {}
    written: list[str] = []
    history: list[Operation] = []
    for n, p in enumerate(planned):
        key = f"k{rng.randrange(keys)}"
        current = store.get(key)
        roll = rng.random()
        status: Status = "info" if roll < p_info else "fail" if roll < p_info + p_fail else "ok"
        applies = status == "ok" or (status == "info" and rng.random() < 0.5)
        complete = INF if status == "info" else p.complete
        kind = rng.choices(["read", "write", "cas", "delete"], weights=[45, 30, 18, 7])[0]
        value = f"v{n}"
        if kind == "read":
            history.append(Operation(p.client, key, "read", None, current, p.invoke, complete, status))
        elif kind == "write":
            if applies:
                store[key] = value
            written.append(value)
            history.append(Operation(p.client, key, "write", value, None, p.invoke, complete, status))
        elif kind == "cas":
            expected = current if rng.random() < 0.6 else rng.choice([None, *written[-5:]])
            matched = expected == current
            if applies and matched:
                store[key] = value
            written.append(value)
            output = matched if status == "ok" else None
            history.append(
                Operation(p.client, key, "cas", (expected, value), output, p.invoke, complete, status)
            )
        else:
            if applies:
                store.pop(key, None)
            output = (current is not None) if status == "ok" and rng.random() < 0.5 else None
            history.append(Operation(p.client, key, "delete", None, output, p.invoke, complete, status))
    rng.shuffle(history)  # the checker must not rely on the order it is given
    return history


def effect(op: Operation) -> Hashable | None:
    """The value an operation leaves in the register if it takes effect."""
    if op.kind == "write":
        return op.input
    if op.kind == "cas" and isinstance(op.input, tuple):
        return op.input[1] if op.output is not False else None
    return None


def ok_reads(history: list[Operation]) -> list[int]:
    return [i for i, op in enumerate(history) if op.kind == "read" and op.status == "ok"]


def corrupt_never_written(rng: random.Random, history: list[Operation]) -> list[Operation]:
    i = rng.choice(ok_reads(history))
    return [*history[:i], dataclasses.replace(history[i], output="never-written"), *history[i + 1 :]]


def corrupt_future(rng: random.Random, history: list[Operation]) -> list[Operation] | None:
    """A read returns a value whose only write began after the read ended."""
    for i in rng.sample(ok_reads(history), len(ok_reads(history))):
        r = history[i]
        later = [
            op
            for op in history
            if op.key == r.key and op.status != "fail" and effect(op) is not None and op.invoke > r.complete
        ]
        if later:
            value = effect(rng.choice(later))
            return [*history[:i], dataclasses.replace(r, output=value), *history[i + 1 :]]
    return None


def corrupt_stale(rng: random.Random, history: list[Operation]) -> list[Operation] | None:
    """A read returns a value that an acknowledged write had certainly
    overwritten before the read began."""
    definite = [op for op in history if op.status == "ok" and op.kind in ("write", "cas", "delete")]
    for i in rng.sample(ok_reads(history), len(ok_reads(history))):
        r = history[i]
        for w1 in definite:
            value = effect(w1)
            if w1.key != r.key or value is None or (w1.kind == "cas" and w1.output is not True):
                continue
            overwritten = any(
                w2.key == r.key
                and w1.complete < w2.invoke
                and w2.complete < r.invoke
                and (w2.kind != "cas" or w2.output is True)
                for w2 in definite
            )
            if overwritten and r.output != value:
                return [*history[:i], dataclasses.replace(r, output=value), *history[i + 1 :]]
    return None


SEEDS = range(100)


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_random_register_histories_pass_and_corrupted_ones_fail(seed: int) -> None:
    rng = random.Random(seed)
    keys, clients = rng.choice([(1, 4), (1, 8), (2, 10), (5, 20)])
    history = generate(
        rng,
        ops=rng.choice([100, 300, 600]),
        keys=keys,
        clients=clients,
        p_info=rng.choice([0, 0.02, 0.05, 0.1]),
    )
    replay = f"seed={seed} keys={keys} clients={clients} ops={len(history)}"
    result = check_history(history, timeout_s=10)
    assert result.ok, f"{replay}: a history of a real register was rejected\n{result.message}"

    bad = corrupt_never_written(rng, history)
    result = check_history(bad, timeout_s=10)
    assert result.outcome is Outcome.ILLEGAL, (
        f"{replay}: a read of a value never written passed\n{result.message}"
    )
    assert "never-written" in result.message, replay

    for corrupt in (corrupt_future, corrupt_stale):
        bad_or_none = corrupt(rng, history)
        if bad_or_none is None:
            continue
        result = check_history(bad_or_none, timeout_s=10)
        assert result.outcome is Outcome.ILLEGAL, f"{replay}: {corrupt.__name__} passed\n{result.message}"


@pytest.mark.parametrize(("keys", "p_info"), [(5, 0.02), (5, 0.1), (1, 0.0)])
def test_large_history_is_decided(keys: int, p_info: float) -> None:
    """What the Jepsen test needs: 5,000 operations over 5 keys from 20
    clients, decided (and a corrupted copy rejected) within the checker's
    own search budget, not given up on; also with many timed-out
    operations, and with all 20 clients on one key. The times are printed,
    not asserted: on a quiet machine each takes well under a second, and a
    loaded one must not fail the test.
    (One hot key with many timed-out operations is the hard case: a
    corrupted copy can take seconds and more to refute, see the module
    docstring.)"""
    rng = random.Random(2024)
    history = generate(rng, ops=5000, keys=keys, clients=20, p_info=p_info)
    started = time.monotonic()
    result = check_history(history, timeout_s=30)
    passed_in = time.monotonic() - started
    assert result.ok, result.message
    bad = corrupt_stale(rng, history)
    assert bad is not None
    started = time.monotonic()
    result = check_history(bad, timeout_s=30)
    failed_in = time.monotonic() - started
    assert result.outcome is Outcome.ILLEGAL, result.message
    print(
        f"5000 ops, {keys} keys, p_info={p_info}: linearizable in {passed_in:.3f}s,"
        f" corrupted copy rejected in {failed_in:.3f}s"
    )


# -- against a brute-force oracle --------------------------------------------------


def brute_force(history: list[Operation], initial: str | None = None) -> bool:
    """Linearizable by the definition, with no cleverness: try every order.
    ``ok`` operations must all be placed; an ``info`` one may take effect
    (when legal) or be dropped; ``fail`` ones never happened."""
    ops = [op for op in history if op.status != "fail" and not (op.status == "info" and op.kind == "read")]

    def apply(op: Operation, state: Hashable | None) -> tuple[bool, Hashable | None]:
        if op.kind == "read":
            return state == op.output, state
        if op.kind == "write":
            return True, op.input
        if op.kind == "cas":
            assert isinstance(op.input, tuple)
            expected, new = op.input
            if op.status == "ok" and op.output is False:
                return state != expected, state
            return state == expected, new
        if op.status == "ok" and op.output is not None:
            return (state is not None) == op.output, None
        return True, None

    def search(remaining: tuple[Operation, ...], state: Hashable | None) -> bool:
        if all(op.status == "info" for op in remaining):
            return True
        for n, op in enumerate(remaining):
            rest = remaining[:n] + remaining[n + 1 :]
            if any(other.status == "ok" and other.complete < op.invoke for other in rest):
                continue  # something still unplaced finished before op began
            legal, new = apply(op, state)
            if legal and search(rest, new):
                return True
            if op.status == "info" and search(rest, state):
                return True
        return False

    return search(tuple(ops), initial)


STATUSES: tuple[Status, ...] = ("ok", "info", "fail")


def random_small_history(rng: random.Random, size: int) -> list[Operation]:
    """Arbitrary (mostly non-linearizable) histories over few values and
    coarse times, so that repeated values and touching intervals are common."""
    values = ["a", "b", "c"]
    history: list[Operation] = []
    for _ in range(size):
        t0 = rng.randrange(6)
        t1 = t0 + rng.randrange(4)
        client = rng.randrange(3)
        status = rng.choices(STATUSES, weights=[6, 3, 1])[0]
        kind = rng.choice(["read", "write", "cas", "delete"])
        if kind == "read":
            history.append(read(client, t0, t1, rng.choice([None, *values]), status=status))
        elif kind == "write":
            history.append(write(client, t0, t1, rng.choice(values), status=status))
        elif kind == "cas":
            ok = rng.random() < 0.5 if status == "ok" else None
            history.append(
                cas(client, t0, t1, rng.choice([None, *values]), rng.choice(values), ok, status=status)
            )
        else:
            deleted = rng.choice([None, True, False]) if status == "ok" else None
            history.append(delete(client, t0, t1, status=status, deleted=deleted))
    return history


def near_miss_history(rng: random.Random, size: int) -> list[Operation]:
    """A history of a real register over few values, with info operations
    that did or did not happen, and half the time one output changed: the
    borderline cases where a wrong pruning rule would show."""
    values = ["a", "b", "c"]
    state: str | None = None
    history: list[Operation] = []
    for at in sorted(rng.uniform(0, 10) for _ in range(size)):
        t0, t1 = round(at - rng.uniform(0, 3)), round(at + rng.uniform(0, 3))
        client = rng.randrange(4)
        status = rng.choices(STATUSES, weights=[7, 3, 1])[0]
        happens = status == "ok" or (status == "info" and rng.random() < 0.5)
        kind = rng.choice(["read", "write", "write", "cas", "cas", "delete"])
        if kind == "read":
            history.append(read(client, t0, t1, state, status=status))
        elif kind == "write":
            value = rng.choice(values)
            history.append(write(client, t0, t1, value, status=status))
            state = value if happens else state
        elif kind == "cas":
            expected, new = rng.choice([state, None, *values]), rng.choice(values)
            matched = expected == state
            history.append(
                cas(client, t0, t1, expected, new, matched if status == "ok" else None, status=status)
            )
            state = new if happens and matched else state
        else:
            deleted = state is not None if status == "ok" and rng.random() < 0.5 else None
            history.append(delete(client, t0, t1, status=status, deleted=deleted))
            state = None if happens else state
    if history and rng.random() < 0.5:
        i = rng.randrange(len(history))
        op = history[i]
        if op.kind == "read":
            history[i] = dataclasses.replace(op, output=rng.choice([None, *values]))
        elif op.kind == "cas" and op.status == "ok":
            history[i] = dataclasses.replace(op, output=not op.output)
        elif op.kind == "delete" and op.status == "ok":
            history[i] = dataclasses.replace(op, output=rng.choice([None, True, False]))
        else:  # an info or failed operation that in fact completed, or not
            output = rng.random() < 0.5 if op.kind == "cas" else None
            history[i] = dataclasses.replace(op, status=rng.choice(STATUSES), output=output)
    return history


@pytest.mark.parametrize("generator", [random_small_history, near_miss_history])
def test_agrees_with_brute_force_on_small_histories(
    generator: Callable[[random.Random, int], list[Operation]],
) -> None:
    rng = random.Random(7)
    verdicts = {True: 0, False: 0}
    for case in range(3000):
        history = generator(rng, rng.randrange(1, 9))
        initial = rng.choice([None, "a"])
        expected = brute_force(history, initial)
        result = check_history(history, initial=initial)
        assert result.ok == expected, (
            f"case {case} (seed 7): checker says {result.outcome.value}, brute force {expected}\n"
            + "\n".join(op.describe() for op in history)
            + f"\n{result.message}"
        )
        verdicts[expected] += 1
    # Both verdicts are well represented, or the comparison proves little.
    assert min(verdicts.values()) > 500, verdicts
