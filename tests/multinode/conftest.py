"""Plumbing for tests that need the 3-node dev Slurm cluster.

``multinode_env`` loads the cluster environment (SLURM_CONF) into os.environ
and checks that nodes n1, n2, n3 are ready. When they are not, tests skip
loudly, or fail under CI (env ``CI`` set): start the cluster with
``make slurm-up NODES=3`` (``slurm/devcluster.sh up --nodes 3``).

The helpers live in tests/slurm/conftest.py; this file loads them from there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.early_jobs import slurm_plumbing

_plumbing = slurm_plumbing()

run = _plumbing.run
node_states = _plumbing.node_states
NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="session")
def multinode_env() -> Iterator[dict[str, str]]:
    """The 3-node dev cluster's environment, loaded into os.environ."""
    with pytest.MonkeyPatch.context() as mp:
        yield _plumbing.require_cluster(mp, nodes=NODES, start="make slurm-up NODES=3")


@pytest.fixture(scope="session")
def slurm_env(multinode_env: dict[str, str]) -> dict[str, str]:
    """Multinode tests may also ask for ``slurm_env``: the same cluster."""
    return multinode_env
