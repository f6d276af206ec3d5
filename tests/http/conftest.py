"""The HTTP tests run the node tests' three runtimes (:mod:`tests.node.harness`)."""

from tests.node.conftest import cluster

__all__ = ["cluster"]
