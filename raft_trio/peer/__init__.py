"""Talking to peers: the wire format of peer messages, the long-lived
stream each node keeps to each peer, and the receiving end of those
streams. The runtime (:mod:`raft_trio.node`) uses it through
:class:`raft_trio.transport.Transport`."""
