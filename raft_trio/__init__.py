"""raft-trio: a Raft consensus service written for Trio."""

__version__ = "0.1.0"
