"""Following references: the reload plan and the table a swap updates."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from modelyard.errors import ModelNotFoundError, ModelNotReadyError, VersionNotFoundError
from modelyard.registry import ModelRef
from modelyard.serving.hosting.manager import ModelTable, plan_reloads


def test_plan_reloads_moved_references_only() -> None:
    current = {"fraud@champion": 3, "fraud@challenger": 4, "churn": None}
    resolved = {"fraud@champion": 4, "fraud@challenger": 4, "churn": 1}
    assert plan_reloads(current, resolved, {}, now=0) == [("fraud@champion", 4), ("churn", 1)]


def test_plan_reloads_skips_recent_failures_until_retry_time() -> None:
    failed = {("fraud@champion", 4): 100.0}
    assert plan_reloads({"fraud@champion": 3}, {"fraud@champion": 4}, failed, now=50) == []
    assert plan_reloads({"fraud@champion": 3}, {"fraud@champion": 4}, failed, now=100) == [
        ("fraud@champion", 4)
    ]


def runtime(name: str, version: int) -> Any:
    return SimpleNamespace(
        name=name,
        version=version,
        version_text=str(version),
        active=0,
        batcher=SimpleNamespace(idle=True),
    )


def test_table_lookup_and_swap() -> None:
    table = ModelTable([ModelRef("fraud", alias="champion"), ModelRef("fraud", alias="challenger")])
    champion, challenger = table.served
    assert not table.ready
    with pytest.raises(ModelNotReadyError, match="still loading"):
        table.lookup("fraud", None)
    v3, v4 = runtime("fraud", 3), runtime("fraud", 4)
    table.install(champion, v3)
    table.install(challenger, v4)
    assert table.ready
    assert table.lookup("fraud", None) is v3  # the first reference answers the bare name
    assert table.lookup("fraud@challenger", None) is v4
    assert table.lookup("fraud", "4") is v4
    assert table.versions_of("fraud") == ["3", "4"]

    assert table.install(champion, v4) is v3  # champion moves to 4: 3 is no longer used
    assert table.retiring == [v3]
    assert table.lookup("fraud", None) is v4
    with pytest.raises(VersionNotFoundError, match="version '3' of model 'fraud' is not loaded"):
        table.lookup("fraud", "3")


def test_shared_version_is_not_retired() -> None:
    table = ModelTable([ModelRef("fraud", alias="champion"), ModelRef("fraud", alias="challenger")])
    v4, v5 = runtime("fraud", 4), runtime("fraud", 5)
    table.install(table.served[0], v4)
    table.install(table.served[1], v4)
    assert table.install(table.served[1], v5) is None  # champion still serves 4
    assert table.retiring == []


def test_unknown_model() -> None:
    table = ModelTable([ModelRef("fraud")])
    with pytest.raises(ModelNotFoundError, match="'nope' is not served here; serving 'fraud'"):
        table.lookup("nope", None)
    with pytest.raises(ModelNotFoundError):
        table.lookup("nope", "1")
