"""Shared fixtures: where the repository is, how to run the installed `rollbook`, golden updates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def update_golden() -> bool:
    """ROLLBOOK_UPDATE_GOLDEN=1 rewrites golden files from the current output (then review the diff)."""
    return os.environ.get("ROLLBOOK_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="session")
def rollbook():
    """Run the installed `rollbook` entry point (next to this interpreter) as a subprocess."""
    exe = Path(sys.executable).with_name("rollbook")
    assert exe.exists(), f"the rollbook entry point is not installed next to {sys.executable}"

    def run(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *map(str, args)], cwd=cwd or REPO, capture_output=True, text=True, timeout=120)

    return run
