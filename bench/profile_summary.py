"""Summarizes a py-spy ``--format raw`` (folded) profile: share of samples
by area (first matching rule over the whole stack) and the top functions
by self time. Record with ``--gil`` (as ``bench/levers.py`` does) so that
samples count time spent running Python, not time waiting in ``epoll`` or
in ``fsync``.

    python -m bench.profile_summary prof.txt
"""

from __future__ import annotations

import collections
import sys

#: (area, substring of a frame); the first rule any frame of a stack matches wins.
AREAS = [
    ("disk thread (sqlite, fsync)", "_work (raft_trio/node/disk.py"),
    ("peer stream receive (our part and below)", "read_stream (raft_trio/peer/inbound.py"),
    ("peer stream sends (frames, httpx, h11, sockets)", "raft_trio/peer/stream.py"),
    ("peer sends: httpx client", "(httpx/"),
    ("peer sends: transport", "raft_trio/peer/transport.py"),
    ("ready loop: apply/persist/advance", "_ready_loop"),
    ("leader pump", "_leader_pump"),
    ("ticker", "_ticker"),
    ("peer receive: /raft/messages", "raft_messages"),
    ("peer receive: lean route", "peer_messages"),
    ("client: PUT handler", "put_key"),
    ("client: lean kv route", "lean_kv"),
    ("Quart request machinery", "(quart/"),
    ("quart-schema", "(quart_schema/"),
    ("Hypercorn (h11, ASGI glue)", "(hypercorn/"),
    ("Trio scheduler and I/O", "(trio/"),
]


#: Threads waiting for work (py-spy counts a blocking queue get as active).
IDLE = ("_work (raft_trio/node/disk.py:47)", "_work (trio/_core/_thread_cache.py:211)")


def main(path: str) -> None:
    areas: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        lines = f.readlines()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        if stack.endswith(IDLE):
            continue
        total += count
        frames = stack.split(";")
        for area, needle in AREAS:
            if any(needle in f for f in frames):
                areas[area] += count
                break
        else:
            areas["other"] += count
        self_time[frames[-1]] += count
    print(f"{total} samples")
    for area, count in areas.most_common():
        print(f"{100 * count / total:5.1f}%  {area}")
    print("\ntop self time:")
    for frame, count in self_time.most_common(25):
        print(f"{100 * count / total:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    main(sys.argv[1])
