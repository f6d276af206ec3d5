from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .dnsmasq import DNSMASQ, Dnsmasq


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base; .ci/run installs it)")
    server = Dnsmasq(tmp_path, "node")
    try:
        yield server
    finally:
        server.stop()
