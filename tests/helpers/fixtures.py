"""The CDE API's example payloads kept in tests/fixtures/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load_fixture(name: str) -> Any:
    """The parsed JSON of tests/fixtures/`name`."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
