"""``modelyard features apply|list|show`` end to end on each metadata backend: a user's
definitions file applied, changed, listed and shown; refusals as one line, exit 2."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from modelyard.cli.context import CliContext
from modelyard.cli.features import features_app
from modelyard.cli.main import main
from modelyard.config import Settings
from modelyard.errors import ConflictError
from modelyard.features import FeatureRegistry
from modelyard.features.sql import SqlDefinitionRepository
from modelyard.yard import Yard

FEATURES = """\
from modelyard.features import (
    Aggregation, Entity, Feature, FeatureView, FileSource, OnDemandFeature, StreamSource,
)

card = Entity("card", key="card_id", description="a payment card")
transactions = StreamSource(
    "transactions", fields=(Feature("amount", "float64"), Feature("merchant", "string"))
)
card_stats = FeatureView(
    "card_stats", card, transactions,
    aggregations=(Aggregation("count", "1h"), Aggregation("mean", "1d", "amount")),
)
card_profile = FeatureView(
    "card_profile", card, FileSource("data/profile.parquet", created_time="written_at"),
    features=(Feature("credit_limit", "float64"), Feature("country", "string")), ttl="30d",
    tags={"team": "risk"},
)
amount_ratio = OnDemandFeature("amount_ratio", "amount / (card_stats.amount_mean_1d + 1)")
"""


@pytest.fixture
def home(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MODELYARD_HOME", str(settings.home))
    if settings.database_url:
        monkeypatch.setenv("MODELYARD_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("MODELYARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("MODELYARD_USER", "ana")
    monkeypatch.setenv("COLUMNS", "200")
    return settings


@pytest.fixture
def features_file(tmp_path: Path) -> Path:
    path = tmp_path / "repo" / "features.py"
    path.parent.mkdir()
    path.write_text(FEATURES)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["features", *args])
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 0, (out, err)
    return out


def test_apply_list_and_show_a_definitions_file(
    home: Settings, features_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ok(capsys, "apply", str(features_file), "--dry-run")
    assert "dry run, nothing written: 4 added, 0 changed, 0 removed, 0 unchanged" in out
    assert "no feature definitions yet" in ok(capsys, "list")

    out = ok(capsys, "apply", str(features_file))
    assert "applied: 4 added, 0 changed, 0 removed, 0 unchanged" in out
    for name in ("card", "card_stats", "card_profile", "amount_ratio"):
        assert name in out
    out = ok(capsys, "apply", str(features_file))
    assert "nothing to change: 4 definition(s) up to date" in out

    changed = FEATURES.replace('"credit_limit", "float64"', '"credit_limit", "int64"')
    changed = changed.replace('ttl="30d"', 'ttl="60d"')
    features_file.write_text(
        changed.replace('OnDemandFeature("amount_ratio"', 'OnDemandFeature("ratio"')
    )
    out = ok(capsys, "apply", str(features_file))
    assert "feature credit_limit retyped float64 -> int64" in out
    assert "ttl: 30d -> 60d" in out
    assert "applied: 1 added, 1 changed, 1 removed, 2 unchanged" in out

    out = ok(capsys, "list")
    assert "2 feature view(s)" in out
    assert "1 on-demand feature(s)" in out
    assert "card_id" in out

    out = ok(capsys, "show", "card_profile")
    assert "feature view card_profile (v2)" in out
    assert "file data/profile.parquet" in out
    assert "credit_limit" in out
    assert "written_at" in out
    assert "feature credit_limit retyped float64 -> int64; ttl: 30d -> 60d" in out
    assert out.count(" ana ") >= 2  # who applied each version
    out = ok(capsys, "show", "amount_ratio")
    assert "on-demand feature amount_ratio was removed" in out


def test_json_output_is_one_document(
    home: Settings, features_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = json.loads(ok(capsys, "apply", str(features_file), "--json"))
    assert plan["dry_run"] is False
    assert [c["name"] for c in plan["added"]] == [
        "card",
        "card_profile",
        "card_stats",
        "amount_ratio",
    ]
    listed = json.loads(ok(capsys, "list", "--json"))
    assert [v["name"] for v in listed["view"]] == ["card_profile", "card_stats"]
    assert listed["view"][0]["definition"]["ttl"] == 30 * 86400.0
    assert listed["on_demand"][0]["definition"]["expression"].startswith("amount /")
    shown = json.loads(ok(capsys, "show", "card_stats", "--json"))
    assert shown["kind"] == "view"
    assert shown["current"]["version"] == 1
    assert shown["current"]["updated_by"] == "ana"
    assert [(v["version"], v["action"]) for v in shown["history"]] == [(1, "added")]


def test_mistakes_are_one_line_and_exit_2(
    home: Settings, features_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = features_file.with_name("broken.py")
    broken.write_text(FEATURES + 'bad = OnDemandFeature("bad", "amount.upper()")\n')
    code, out, err = run(capsys, "apply", str(broken))
    assert code == 2
    assert err.count("\n") == 1
    assert "on-demand feature 'bad': only the listed functions may be called" in err
    code, _, err = run(capsys, "apply", str(features_file.with_name("nope.py")))
    assert (code, err.count("\n")) == (2, 1)
    assert "nope.py is not a Python file" in err
    code, _, err = run(capsys, "show", "nothing")
    assert (code, err.count("\n")) == (2, 1)
    assert "nothing named 'nothing' was ever defined" in err
    assert "no feature definitions yet" in ok(capsys, "list")


@pytest.fixture
def context(home: Settings) -> Iterator[CliContext]:
    """The command's context with deployments that read card_stats (routing will provide
    them; until then this is how a refusal reaches the command line)."""
    with Yard(home) as yard:
        opened = CliContext(home, yard)
        used = {"card_stats": {"fraud": {"count_1h"}}}
        opened.__dict__["feature_registry"] = FeatureRegistry(
            SqlDefinitionRepository(yard.db), used=lambda: used
        )
        yield opened


def test_a_change_that_breaks_a_deployment_is_refused_and_nothing_is_written(
    context: CliContext, features_file: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(features_app, ["apply", str(features_file)], obj=context)
    assert result.exit_code == 0, result.output
    fewer = FEATURES.replace('Aggregation("count", "1h"), Aggregation', "Aggregation")
    features_file.write_text(fewer.replace('"amount")),', '"amount"),),'))
    for args in (["apply", str(features_file)], ["apply", str(features_file), "--dry-run"]):
        result = runner.invoke(features_app, args, obj=context)
        assert isinstance(result.exception, ConflictError), result.output
        assert result.exception.message.startswith(
            "refused, nothing applied: deployment 'fraud' reads card_stats:count_1h, and this "
            "apply removes it"
        )
    stored = context.feature_registry.record("card_stats")
    assert [v.version for v in stored.history] == [1]


def test_events_pushed_from_a_file_are_read_back_online(
    home: Settings, features_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "apply", str(features_file))
    now = time.time()
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps({"card_id": card, "event_time": now - age, "amount": amount,
                        "merchant": "m1", "event_id": f"{card}-{age}"})
            for card, age, amount in (("c1", 120, 10.0), ("c1", 60, 30.0), ("c2", 30, 5.0))
        )
    )  # fmt: skip
    pushed = json.loads(ok(capsys, "push", "transactions", str(events), "--json"))
    assert (pushed["accepted"], pushed["duplicates"]) == (3, [])
    again = json.loads(ok(capsys, "push", "transactions", str(events), "--json"))
    assert sorted(again["duplicates"]) == ["c1-120", "c1-60", "c2-30"]
    read = json.loads(
        ok(capsys, "get", "card_stats:count_1h", "card_stats:amount_mean_1d",
           "-e", "c1", "-e", "c2", "-e", "c9", "--json")
    )  # fmt: skip
    assert read == [
        {"entity": "c1", "found": True, "count_1h": 2, "amount_mean_1d": 20.0},
        {"entity": "c2", "found": True, "count_1h": 1, "amount_mean_1d": 5.0},
        {"entity": "c9", "found": False, "count_1h": 0, "amount_mean_1d": None},
    ]
    table = ok(capsys, "get", "card_stats:count_1h", "-e", "c1")
    assert "c1" in table
    assert "count_1h" in table
    code, _, err = run(capsys, "push", "nope", str(events))
    assert code == 2
    assert "nope" in err


def test_a_deployment_fetches_features_and_apply_keeps_them(
    home: Settings, features_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "apply", str(features_file))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, size=(100, 2)).astype(np.float32)
    with Yard(home) as yard:
        model = LogisticRegression().fit(x, (x[:, 0] > x[:, 1]).astype(int))
        yard.register_model("risk", model, x, feature_names=["amount", "count_1h"])
    with pytest.raises(SystemExit) as done:
        main(["deploy", "scoring", "--model", "risk", "--version", "1",
              "--features", "card_stats:count_1h"])  # fmt: skip
    assert done.value.code in (0, None), capsys.readouterr()
    assert "card_stats:count_1h" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["deploy", "other", "--model", "risk", "--version", "1",
              "--features", "card_stats:nope"])  # fmt: skip
    assert done.value.code == 2
    assert "has no feature 'nope'" in capsys.readouterr().err
    fewer = FEATURES.replace('Aggregation("count", "1h"), Aggregation', "Aggregation")
    features_file.write_text(fewer.replace('"amount")),', '"amount"),),'))
    code, _, err = run(capsys, "apply", str(features_file))
    assert code == 2
    assert "deployment 'scoring' reads card_stats:count_1h" in err


def test_materialize_writes_a_file_source_online_once(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    data = tmp_path / "profile.parquet"
    pq.write_table(
        pa.table(
            {
                "card_id": ["c1", "c1", "c2"],
                "event_time": [now - 300, now - 60, now - 30],
                "credit_limit": [1000.0, 1500.0, 700.0],
            }
        ),
        data,
    )
    definitions = tmp_path / "profiles.py"
    definitions.write_text(
        "from modelyard.features import Entity, Feature, FeatureView, FileSource\n"
        "profile = FeatureView('profile', Entity('card', key='card_id'),\n"
        f"    FileSource({str(data)!r}), features=(Feature('credit_limit', 'float64'),))\n"
    )
    ok(capsys, "apply", str(definitions))
    first = json.loads(ok(capsys, "materialize", "--json"))
    assert [(m["view"], m["latest_written"]) for m in first] == [("profile", 2)]
    assert first[0]["watermark"] == pytest.approx(now - 30)
    again = json.loads(ok(capsys, "materialize", "--json"))
    assert again[0]["latest_rows"] == 0  # nothing arrived since the watermark
    ranged = json.loads(ok(capsys, "materialize", "--since", "2m", "--json"))
    assert (ranged[0]["latest_rows"], ranged[0]["watermark"]) == (2, first[0]["watermark"])
    read = json.loads(ok(capsys, "get", "profile:credit_limit", "-e", "c1", "-e", "c2", "--json"))
    assert [r["credit_limit"] for r in read] == [1500.0, 700.0]
    table = ok(capsys, "materialize")
    assert "profile" in table
    assert "watermark" in table
    code, _, err = run(capsys, "materialize", "--view", "nope")
    assert (code, err.strip()) == (2, "error: no feature view 'nope'; defined: profile")
