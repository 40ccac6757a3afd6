"""README's Guarantees table names, for each promise, the tests that hold it: each named
test must exist, so that a renamed or deleted test cannot leave a promise unheld."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def guarantee_references() -> list[tuple[str, str]]:
    """(test file, test name or "") for each reference of the table, in order; a reference
    ``::name`` belongs to the file named before it."""
    readme = (ROOT / "README.md").read_text("utf-8")
    table = readme[readme.index("## Guarantees") :]
    table = table[: table.index("\n## ")] if "\n## " in table else table
    found: list[tuple[str, str]] = []
    current = ""
    for reference in re.findall(r"`((?:unit|integration)/[^`]+|::[^`]+)`", table):
        path, _, name = reference.partition("::")
        current = path or current
        found.append((current, name.split("[")[0]))
    return found


def test_every_test_the_guarantees_name_exists() -> None:
    references = guarantee_references()
    assert len(references) > 20
    missing = []
    for path, name in references:
        source = ROOT / "tests" / path
        if not source.is_file() or (name and f"def {name}(" not in source.read_text("utf-8")):
            missing.append(f"{path}::{name}" if name else path)
    assert missing == []
