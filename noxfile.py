"""One command for the checks: ``nox`` runs lint, types and the tests.

Sessions run in the current environment (``pip install -e '.[test]'``
first), so they need no network and use the versions the tests use::

    nox                 # lint, types, tests
    nox -s lint types   # the quick ones (what pre-commit runs, repo-wide)
    nox -s tests -- tests/core   # arguments after -- go to pytest
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "types", "tests"]

#: Everything that is Python: the service, the monitor, tests and benches.
SOURCES = ["raft_trio", "monitor", "tests", "bench", "noxfile.py"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: the rules of pyproject.toml (ASYNC, PT and PERF among them)
    and the formatter."""
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over every file pyproject.toml lists."""
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """The README's test command."""
    session.run("pytest", "-n", "auto", *session.posargs)
