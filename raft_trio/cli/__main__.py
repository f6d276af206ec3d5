"""``python -m raft_trio.cli``: the same as the ``raft-trio`` command."""

from . import main

raise SystemExit(main())
