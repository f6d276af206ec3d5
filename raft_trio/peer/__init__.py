"""Talking to the other nodes: the wire format and the sender of Raft
messages (:mod:`.transport`), and the signatures that authenticate them
(:mod:`.auth`)."""
