import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so that tests can import examples/ and generated/


@pytest.fixture
def root() -> Path:
    return ROOT
