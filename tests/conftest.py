import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so that tests can import examples/ and generated/


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True, scope="session")
def _c_backend_cache(tmp_path_factory):
    """Modules of the C backend compile into a temporary cache, not ~/.cache/symgen."""
    import os

    previous = os.environ.get("SYMGEN_CACHE_DIR")
    os.environ["SYMGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("symgen-cache"))
    yield
    if previous is None:
        os.environ.pop("SYMGEN_CACHE_DIR", None)
    else:
        os.environ["SYMGEN_CACHE_DIR"] = previous
