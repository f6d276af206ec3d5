"""One pyproject installs both import packages, raft_trio and raft_monitor
(from monitor/raft_monitor), with the monitor's static files and both
commands; and the container image gets everything that takes: the wheel is
built here from exactly what the Containerfile copies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sources_the_image_builds_from() -> list[str]:
    """The sources of the Containerfile's COPY lines into its build
    directory (a relative destination), before it runs pip install."""
    text = (ROOT / "Containerfile").read_text()
    install = text.index("pip install .")
    sources: list[str] = []
    for match in re.finditer(r"^COPY\s+(.+)$", text[:install], re.MULTILINE):
        *copied, destination = match[1].split()
        if not destination.startswith("/"):
            sources.extend(copied)
    return sources


def test_the_image_builds_a_wheel_with_both_packages_their_data_and_commands(tmp_path: Path) -> None:
    sources = sources_the_image_builds_from()
    assert {"pyproject.toml", "raft_trio", "monitor"} <= set(sources), sources
    tree = tmp_path / "src"
    tree.mkdir()
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, tree / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, tree / source)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "out"), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "out").glob("raft_trio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        commands = archive.read(entry_points).decode()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
        "raft_trio",
        "raft_monitor",
    }
    for static in ("index.html", "app.js", "style.css"):
        assert f"raft_monitor/static/{static}" in names
    assert "raft_trio/core/_raft.py" in names and "raft_monitor/__main__.py" in names
    assert "raft-trio = raft_trio.cli:main" in commands
    assert "raft-monitor = raft_monitor.__main__:main" in commands
