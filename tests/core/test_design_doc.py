"""docs/design.md's example of the in-memory driver runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def test_the_in_memory_cluster_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DESIGN.read_text(), re.DOTALL)
    (example,) = [block for block in blocks if "MemoryCluster(" in block]
    exec(compile(example, str(DESIGN), "exec"), {})  # its asserts are the test
