"""Shared fixtures of the training tests."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A --tiny data set generated once through the real CLI; tests only read it (test_data.py makes its own
    copies to corrupt)."""
    out = tmp_path_factory.mktemp("tiny") / "data"
    subprocess.run([sys.executable, "-m", "training.data.generate", "--out", str(out), "--tiny", "--no-progress",
                    "--workers", "1"], cwd=ROOT, check=True, capture_output=True)
    return str(out)
