import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAST_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's real data (../shared); tests that need it skip when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real data not found at {SHARED} (set LAST_SHARED to its location)")
    return SHARED
