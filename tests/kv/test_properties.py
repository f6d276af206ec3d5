"""Properties of the state machine over random command sequences
(hypothesis; a failure prints the shrunk sequence that breaks it):

- it agrees with a plain-dict model on every result and on the state;
- a transaction is all or nothing;
- a snapshot taken anywhere, restored and fed the rest of the log, ends
  in the same state with the same results (what a follower does);
- the history replays: the state at ``floor - 1`` plus every held change
  is the current state, whatever the history's bounds.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from raft_trio.kv import (
    CasFailed,
    Command,
    Compare,
    Delete,
    Deleted,
    Got,
    History,
    KeyValue,
    KeyValueStore,
    LeaseGrant,
    LeaseGranted,
    LeaseNotFound,
    LeaseRevoke,
    LeaseRevoked,
    OpDelete,
    OpGet,
    OpPut,
    OpRange,
    Put,
    Ranged,
    Result,
    Txn,
    TxnDone,
    TxnOp,
    Written,
)

KEYS = ["a", "a/1", "a/2", "b", "ba"]
VALUES = ["", "x", "y", "z"]

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
lease_ids = st.integers(min_value=0, max_value=12)


def compares() -> st.SearchStrategy[Compare]:
    ops = st.sampled_from(["=", "!=", "<", ">"])
    return st.one_of(
        st.builds(Compare, keys, st.just("value"), ops, values),
        st.builds(
            Compare,
            keys,
            st.sampled_from(["version", "create_revision", "mod_revision"]),
            ops,
            st.integers(0, 12),
        ),
        st.builds(Compare, keys, st.just("exists"), st.sampled_from(["=", "!="]), st.booleans()),
    )


txn_ops: st.SearchStrategy[TxnOp] = st.one_of(
    st.builds(OpPut, keys, values, lease_ids),
    st.builds(OpDelete, keys),
    st.builds(OpGet, keys),
    st.builds(OpRange, st.sampled_from(["", "a", "a/", "b", "c"])),
)

commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Put, keys, values, lease=lease_ids),
    st.builds(Put, keys, values, check=st.just(True), expect=st.one_of(st.none(), values)),
    st.builds(Delete, keys),
    st.builds(
        Txn,
        st.lists(compares(), max_size=3),
        st.lists(txn_ops, max_size=4),
        st.lists(txn_ops, max_size=4),
    ),
    st.builds(LeaseGrant, st.integers(1, 100)),
    st.builds(LeaseRevoke, lease_ids),
)


@dataclasses.dataclass
class Model:
    """The rules written as plainly as possible: an unsorted dict, lists
    sorted on demand, transactions applied to a copy."""

    data: dict[str, KeyValue] = dataclasses.field(default_factory=dict)
    leases: dict[int, int] = dataclasses.field(default_factory=dict)

    def apply(self, index: int, command: Command) -> Result:
        if isinstance(command, Put):
            current = self.data.get(command.key)
            if command.check and (current.value if current else None) != command.expect:
                return CasFailed(command.key, current.value if current else None, index)
            if command.lease and command.lease not in self.leases:
                return LeaseNotFound(command.lease, index)
            return self.put(index, command.key, command.value, command.lease)
        if isinstance(command, Delete):
            return self.delete(index, command.key)
        if isinstance(command, LeaseGrant):
            self.leases[index] = command.ttl
            return LeaseGranted(index, command.ttl)
        if isinstance(command, LeaseRevoke):
            if command.id not in self.leases:
                return LeaseRevoked(command.id, False, [], index)
            del self.leases[command.id]
            doomed = sorted(key for key, kv in self.data.items() if kv.lease == command.id)
            for key in doomed:
                del self.data[key]
            return LeaseRevoked(command.id, True, doomed, index)
        assert isinstance(command, Txn), command  # the model knows no auth commands
        return self.txn(index, command)

    def put(self, index: int, key: str, value: str, lease: int) -> Written:
        old = self.data.get(key)
        create, version = (old.create_revision, old.version + 1) if old else (index, 1)
        self.data[key] = KeyValue(key, value, create, index, version, lease)
        return Written(key, value, index, create, version, lease)

    def delete(self, index: int, key: str) -> Deleted:
        old = self.data.pop(key, None)
        return Deleted(key, old is not None, index, old.value if old else None)

    def holds(self, compare: Compare) -> bool:
        kv = self.data.get(compare.key)
        if compare.target == "exists":
            return (
                (kv is not None) == compare.value if compare.op == "=" else (kv is not None) != compare.value
            )
        if compare.target == "value":
            actual: object = kv.value if kv else None
            if actual is None:
                return compare.op == "!="
        else:
            actual = getattr(kv, compare.target) if kv else 0
        expected = compare.value
        if type(actual) is not type(expected):
            return False
        return {
            "=": actual == expected,
            "!=": actual != expected,
            "<": actual < expected,  # type: ignore[operator]
            ">": actual > expected,  # type: ignore[operator]
        }[compare.op]

    def txn(self, index: int, txn: Txn) -> Result:
        succeeded = all(self.holds(c) for c in txn.compare)
        ops = txn.success if succeeded else txn.failure
        for op in ops:
            if isinstance(op, OpPut) and op.lease and op.lease not in self.leases:
                return LeaseNotFound(op.lease, index)
        results: list[Written | Deleted | Got | Ranged] = []
        for op in ops:
            if isinstance(op, OpPut):
                results.append(self.put(index, op.key, op.value, op.lease))
            elif isinstance(op, OpDelete):
                results.append(self.delete(index, op.key))
            elif isinstance(op, OpGet):
                results.append(Got(op.key, self.data.get(op.key)))
            else:
                assert isinstance(op, OpRange)
                kvs = [self.data[k] for k in sorted(self.data) if k.startswith(op.prefix)]
                results.append(Ranged(op.prefix, kvs, len(kvs), False))
        return TxnDone(succeeded, results, index)

    def state(self) -> list[KeyValue]:
        return [self.data[key] for key in sorted(self.data)]


def state_of(store: KeyValueStore) -> list[KeyValue]:
    return store.range(limit=None).kvs


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=40))
def test_the_store_agrees_with_the_model(log: list[Command]) -> None:
    store, model = KeyValueStore(), Model()
    for index, command in enumerate(log, start=1):
        assert store.apply(index, command) == model.apply(index, command), (index, command)
        assert state_of(store) == model.state()
    assert {lease: held.ttl for lease, held in store.leases.items()} == model.leases
    for lease, held in store.leases.items():
        assert held.keys == {kv.key for kv in model.state() if kv.lease == lease}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(commands, max_size=20),
    st.builds(
        Txn,
        st.lists(compares(), max_size=3),
        st.lists(txn_ops, min_size=1, max_size=5),
        st.lists(txn_ops, max_size=5),
    ),
)
def test_a_transaction_is_all_or_nothing(log: list[Command], txn: Txn) -> None:
    store = KeyValueStore()
    for index, command in enumerate(log, start=1):
        store.apply(index, command)
    before = state_of(store)
    index = len(log) + 1
    result = store.apply(index, txn)
    after = state_of(store)
    if isinstance(result, LeaseNotFound):
        assert after == before
        assert store.history.since(index) == []
        return
    assert isinstance(result, TxnDone)
    # It made every write of the branch it took (the last one per key
    # wins), all at its revision, and touched no other key.
    branch = txn.success if result.succeeded else txn.failure
    last_write: dict[str, OpPut | OpDelete] = {}
    for op in branch:
        if isinstance(op, (OpPut, OpDelete)):
            last_write[op.key] = op
    before_by_key = {kv.key: kv for kv in before}
    after_by_key = {kv.key: kv for kv in after}
    for key in set(before_by_key) | set(after_by_key) | set(last_write):
        last = last_write.get(key)
        if last is None:
            assert after_by_key.get(key) == before_by_key.get(key), key
        elif isinstance(last, OpDelete):
            assert key not in after_by_key, key
        else:
            kv = after_by_key[key]
            assert (kv.value, kv.mod_revision, kv.lease) == (last.value, index, last.lease), key


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=40), st.data())
def test_a_snapshot_plus_the_rest_of_the_log_ends_in_the_same_state(
    log: list[Command], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(log)))
    leader = KeyValueStore()
    for index, command in enumerate(log[:cut], start=1):
        leader.apply(index, command)
    follower = KeyValueStore()
    follower.restore(leader.snapshot())
    for index, command in enumerate(log[cut:], start=cut + 1):
        assert follower.apply(index, command) == leader.apply(index, command)
    assert state_of(follower) == state_of(leader)
    again = KeyValueStore()
    again.restore(follower.snapshot())
    assert state_of(again) == state_of(leader)
    assert {lease: held.keys for lease, held in again.leases.items()} == {
        lease: held.keys for lease, held in leader.leases.items()
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=40), st.integers(1, 8), st.integers(100, 2000))
def test_the_held_history_replays_onto_the_state_before_it(
    log: list[Command], max_changes: int, max_bytes: int
) -> None:
    store = KeyValueStore(history=History(max_changes=max_changes, max_bytes=max_bytes))
    snapshots = {0: store.snapshot()}
    for index, command in enumerate(log, start=1):
        store.apply(index, command)
        snapshots[index] = store.snapshot()
    floor = store.history.floor
    replayed = KeyValueStore()
    replayed.restore(snapshots[floor - 1])
    data = {kv.key: kv for kv in state_of(replayed)}
    for change in store.history.since(floor):
        if change.kind == "put":
            assert change.value is not None
            data[change.key] = KeyValue(
                change.key,
                change.value,
                change.create_revision,
                change.revision,
                change.version,
                change.lease,
            )
        else:
            assert data.pop(change.key).value == change.prev_value
    assert [data[key] for key in sorted(data)] == state_of(store)
