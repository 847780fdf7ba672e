from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import backlite

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the tests' helpers module, for child processes too


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cache.db")


@pytest.fixture
def storage(db: str):
    with backlite.Storage(db) as s:
        yield s


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    """Environment for child processes: they import the tests' helpers module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env
