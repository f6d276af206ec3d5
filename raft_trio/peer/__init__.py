"""Talking to the other nodes: the long-lived stream each node keeps to
each peer (:mod:`.stream`, its frames in :mod:`.framing`, its receiving end
in :mod:`.inbound`), the set of them following the membership
(:mod:`.transport`), the wire format (:mod:`.wire`), and the signatures
that authenticate requests and frames (:mod:`.auth`)."""
