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


@pytest.fixture(autouse=True)
def _generous_cli_budget(request, monkeypatch):
    """`symgen show`/`diff` run under a 5 s budget; on a loaded test machine a legitimate
    `show --program` can come close to it, so tests that are not about the budget get 60 s.
    tests/test_cli_budget.py keeps the real defaults."""
    if request.module.__name__.rsplit(".", 1)[-1] != "test_cli_budget":
        monkeypatch.setenv("SYMGEN_TIME_BUDGET", "60")
    else:
        monkeypatch.delenv("SYMGEN_TIME_BUDGET", raising=False)
