"""The blocking client loads no Trio: a program that only talks to a
cluster (the CLI's ``kv``, ``status``) starts without it
(raft_trio/client/__init__.py). Checked in a fresh interpreter, since
this one has loaded Trio long ago."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_blocking_client_loads_no_trio() -> None:
    probe = "import sys, raft_trio.client; print(sorted(m for m in sys.modules if m.split('.')[0] == 'trio'))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
