import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root shared by the tests (generated datasets are reused)."""
    return tmp_path_factory.mktemp("datasets")
