"""Definitions are read from the user's Python files: what is bound at the top level
counts, and a mistake in the file is one line naming the file and line."""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import pytest

from modelyard.errors import ValidationError
from modelyard.features import load_definitions

HEADER = """\
from modelyard.features import (
    Aggregation, Entity, Feature, FeatureView, FileSource, OnDemandFeature, StreamSource,
)
"""

DEFINITIONS = (
    HEADER
    + """
card = Entity("card", key="card_id")
events = StreamSource("transactions", fields=(Feature("amount", "float64"),))
card_stats = FeatureView("card_stats", card, events, aggregations=(Aggregation("count", "1h"),))
ratio = OnDemandFeature("ratio", "amount / (card_stats.count_1h + 1)")

def helper():
    # not at the top level: not collected
    return Entity("hidden", key="k")

views = [card_stats]  # inside a list: not collected on its own, but card_stats is
"""
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(dedent(text))
    return path


def test_top_level_definitions_are_collected(tmp_path: Path) -> None:
    found = load_definitions(write(tmp_path, "features.py", DEFINITIONS))
    assert [e.name for e in found.entities] == ["card"]
    assert [v.name for v in found.views] == ["card_stats"]
    assert [f.name for f in found.on_demand] == ["ratio"]
    assert not [name for name in sys.modules if name.startswith("modelyard_features_")]


def test_a_file_may_import_its_neighbours_and_several_files_make_one_set(tmp_path: Path) -> None:
    write(tmp_path, "entities.py", HEADER + 'card = Entity("card", key="card_id")\n')
    first = write(
        tmp_path,
        "views.py",
        HEADER + "from entities import card\n"
        'profile = FeatureView("profile", card, FileSource("p.parquet"), '
        'features=(Feature("limit", "float64"),))\n',
    )
    second = write(tmp_path, "more.py", HEADER + 'user = Entity("user", key="user_id")\n')
    found = load_definitions(first, second)
    assert [e.name for e in found.entities] == ["card", "user"]
    assert [v.name for v in found.views] == ["profile"]
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x = (\n", "features.py:1: '\\(' was never closed"),
        ("import nowhere_to_be_found\n", "features.py:1: ModuleNotFoundError: No module named"),
        ("\n\nraise RuntimeError('boom')\n", "features.py:3: RuntimeError: boom"),
        ("x = 1\n", "defines no Entity, FeatureView or OnDemandFeature at its top level"),
    ],
)
def test_a_broken_file_is_one_line_naming_the_file_and_line(
    tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        load_definitions(write(tmp_path, "features.py", text))


def test_a_bad_definition_keeps_its_own_message(tmp_path: Path) -> None:
    path = write(tmp_path, "features.py", HEADER + 'f = OnDemandFeature("f", "open(x)")\n')
    with pytest.raises(ValidationError, match="on-demand feature 'f': unknown function 'open'"):
        load_definitions(path)


def test_only_python_files_are_read(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="missing.py is not a Python file"):
        load_definitions(tmp_path / "missing.py")
    with pytest.raises(ValidationError, match="features.yaml is not a Python file"):
        load_definitions(write(tmp_path, "features.yaml", "a: 1\n"))
    with pytest.raises(ValidationError, match="name at least one Python file"):
        load_definitions()
