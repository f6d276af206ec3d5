"""The failed-login limit: free failures, then doubling waits up to a
ceiling, per name and per address, forgotten after a quiet time, and
bounded in memory. On a hand-driven clock."""

from __future__ import annotations

import contextlib

from raft_trio.auth import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_failures_are_free_then_each_wait_doubles_up_to_the_ceiling() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=5, base_delay_s=1.0, max_delay_s=8.0)
    waits = []
    for _ in range(10):
        waits.append(throttle.wait_s("alice"))
        throttle.failed("alice")
    assert waits == [0.0] * 6 + [1.0, 2.0, 4.0, 8.0]
    assert throttle.wait_s("alice") == 8.0
    clock.now += 3.0
    assert throttle.wait_s("alice") == 5.0
    clock.now += 5.0
    assert throttle.wait_s("alice") == 0.0


def test_a_success_clears_the_name_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=1)
    for _ in range(3):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.wait_s("alice") > 0 and throttle.wait_s("10.0.0.1") > 0
    throttle.succeeded("alice")
    assert throttle.wait_s("alice") == 0.0
    assert throttle.wait_s("alice", "10.0.0.1") > 0


def test_a_guesser_spraying_names_from_one_address_is_slowed_by_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=5)
    for n in range(6):
        throttle.failed(f"user{n}", "10.0.0.9")
    assert throttle.wait_s("user99", "10.0.0.9") == 1.0
    assert throttle.wait_s("user99", "10.0.0.10") == 0.0


def test_failures_are_forgotten_after_a_quiet_time() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=0, forget_after_s=900)
    throttle.failed("alice")
    clock.now += 899
    assert throttle.wait_s("alice") == 0.0  # its 1 s wait is long over, but it is remembered
    throttle.failed("alice")
    assert throttle.wait_s("alice") == 2.0
    clock.now += 900
    assert throttle.wait_s("alice") == 0.0
    throttle.failed("alice")
    assert throttle.wait_s("alice") == 1.0  # counted from one again


def test_memory_is_bounded_and_the_oldest_go_first() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=0, max_subjects=100)
    for n in range(1000):
        throttle.failed(f"user{n}")
    assert len(throttle) == 100
    assert throttle.wait_s("user0") == 0.0
    assert throttle.wait_s("user999") == 1.0


def test_attempts_in_flight_count_as_failures_until_they_end() -> None:
    """Guesses sent all at once are all checked before any has failed: each
    one still being checked must count, or a burst of a thousand passes
    where one at a time would be slowed after the sixth."""
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=5, base_delay_s=1.0)
    admitted = []
    with contextlib.ExitStack() as stack:
        for _ in range(10):
            if throttle.wait_s("alice", "10.0.0.1") == 0.0:
                stack.enter_context(throttle.attempt("alice", "10.0.0.1"))
                admitted.append(True)
        assert len(admitted) == 6  # as many as one at a time, before the first wait
        assert throttle.wait_s("alice") == 1.0
        assert throttle.wait_s("bob", "10.0.0.2") == 0.0
    assert throttle.wait_s("alice") == 0.0  # none of them failed: nothing is left


def test_an_attempt_in_flight_waits_on_top_of_the_failures_before() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, free_failures=1, base_delay_s=1.0)
    throttle.failed("alice")
    throttle.failed("alice")
    clock.now += 5.0
    assert throttle.wait_s("alice") == 0.0
    with throttle.attempt("alice"):
        assert throttle.wait_s("alice") == 2.0
        throttle.failed("alice")
    assert throttle.wait_s("alice") == 2.0
