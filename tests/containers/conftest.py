from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "container: builds the image and runs compose with Podman and Docker (only with RAFT_CONTAINER_TESTS=1)",
    )
