"""Files that ship with the package: JSON Schemas (`schemas/` at the top of the repo,
reached through the `loader/schemas` link so that an installed package finds them too)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def schema_path(*parts: str) -> Path:
    """`schema_path("icasework", "createcase.schema.json")` -> the file's path."""
    return SCHEMAS.joinpath(*parts)


@cache
def load_schema(*parts: str) -> dict[str, Any]:
    """A shipped JSON Schema, parsed once per process. Callers must not mutate it."""
    with schema_path(*parts).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
