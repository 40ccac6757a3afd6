"""The fraud demo's transaction simulator: seeded, streamable, with switchable drift."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from modelyard.demos.fraud import (
    COLUMNS,
    FRAUD_LABEL_DELAY_S,
    FRAUD_MIX_AFTER,
    FRAUD_MIX_BEFORE,
    LEGIT_LABEL_DELAY_S,
    PATTERNS,
    SimulatorConfig,
    TransactionSimulator,
)
from modelyard.errors import ValidationError

DAY = 86_400.0
START = SimulatorConfig().start


def _window(config: SimulatorConfig, days: float) -> dict[str, np.ndarray]:
    return TransactionSimulator(config).generate(config.start, config.start + days * DAY)


def _assert_same(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> None:
    assert list(left) == list(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert left[name].tobytes() == right[name].tobytes(), name


@pytest.fixture(scope="module")
def month() -> dict[str, np.ndarray]:
    """The default world (2,000 cards, 1% fraud) over 30 days."""
    return _window(SimulatorConfig(), 30)


def test_the_same_seed_gives_the_same_bytes() -> None:
    config = SimulatorConfig(cards=300, seed=11)
    first, second = _window(config, 5), _window(config, 5)
    _assert_same(first, second)
    other = _window(SimulatorConfig(cards=300, seed=12), 5)
    assert not np.array_equal(first["event_time"][:100], other["event_time"][:100])


def test_streaming_hour_by_hour_gives_the_batch() -> None:
    config = SimulatorConfig(cards=300, seed=3, concept_drift_at=START + 2.3 * DAY)
    simulator = TransactionSimulator(config)
    hours = [simulator.generate(START + h * 3600, START + (h + 1) * 3600) for h in range(4 * 24)]
    streamed = {name: np.concatenate([part[name] for part in hours]) for name in COLUMNS}
    _assert_same(streamed, _window(config, 4))


def test_windows_drawn_by_fresh_simulators_give_the_batch() -> None:
    """No state carries between calls: the cache of recent days is only a speed-up."""
    config = SimulatorConfig(cards=300, seed=5, data_drift_at=START + 1.7 * DAY)
    edges = [START - DAY, START + 0.4 * DAY, START + 1.0 * DAY, START + 2.95 * DAY, START + 4 * DAY]
    parts = [
        TransactionSimulator(config).generate(low, high)
        for low, high in zip(edges, edges[1:], strict=False)
    ]
    streamed = {name: np.concatenate([part[name] for part in parts]) for name in COLUMNS}
    _assert_same(streamed, _window(config, 4))


def test_columns_are_sorted_by_time_and_of_one_length(month: dict[str, np.ndarray]) -> None:
    assert tuple(month) == COLUMNS
    assert len({column.size for column in month.values()}) == 1
    times = month["event_time"]
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= START
    assert times[-1] < START + 30 * DAY
    assert np.array_equal(month["hour"], (times // 3600 % 24).astype(np.int64))
    assert np.array_equal(month["is_fraud"], (month["pattern"] != "legit").astype(np.int64))
    assert np.unique(month["transaction_id"]).size == times.size
    assert set(np.unique(month["pattern"])) <= set(PATTERNS)
    assert all(card.startswith("c") and len(card) == 6 for card in month["card_id"][:50])
    assert 150_000 < times.size < 210_000  # 2,000 cards x 3 a day x 30 days


def test_an_empty_window_has_every_column() -> None:
    simulator = TransactionSimulator(SimulatorConfig(cards=50))
    empty = simulator.generate(START + DAY, START + DAY)
    assert tuple(empty) == COLUMNS
    assert all(column.size == 0 for column in empty.values())
    assert simulator.generate(START - 5 * DAY, START)["event_time"].size == 0


@pytest.mark.parametrize("rate", [0.005, 0.01, 0.02])
def test_the_fraud_rate_is_the_configured_one(rate: float) -> None:
    columns = _window(SimulatorConfig(fraud_rate=rate, seed=1), 30)
    assert columns["is_fraud"].mean() == pytest.approx(rate, rel=0.2)


def test_no_fraud_at_a_zero_rate() -> None:
    assert _window(SimulatorConfig(cards=300, fraud_rate=0.0), 5)["is_fraud"].sum() == 0


def test_legitimate_purchases_follow_the_cards_habits(month: dict[str, np.ndarray]) -> None:
    cards = {card.card_id: card for card in TransactionSimulator(SimulatorConfig()).cards}
    legit = month["is_fraud"] == 0
    home = np.array([cards[c].home_country for c in month["card_id"][legit]])
    assert np.mean(month["country"][legit] == home) > 0.97
    favourite = [
        m in cards[c].merchant_ids
        for c, m in zip(month["card_id"][legit], month["merchant_id"][legit], strict=True)
    ]
    assert np.mean(favourite) > 0.75
    assert np.mean(np.isin(month["hour"][legit], [2, 3, 4])) < 0.01


def _episodes(columns: dict[str, np.ndarray], pattern: str, gap_s: float) -> list[np.ndarray]:
    """Row indices of each episode of ``pattern``: a card's rows of it, split at longer gaps."""
    episodes = []
    for card in np.unique(columns["card_id"][columns["pattern"] == pattern]):
        rows = np.flatnonzero((columns["pattern"] == pattern) & (columns["card_id"] == card))
        breaks = np.flatnonzero(np.diff(columns["event_time"][rows]) > gap_s) + 1
        episodes.extend(np.split(rows, breaks))
    return episodes


def test_compromised_cards_are_tested_with_small_charges_then_emptied(
    month: dict[str, np.ndarray],
) -> None:
    episodes = _episodes(month, "test_then_large", gap_s=20 * 60)
    assert len(episodes) > 100
    for rows in episodes:
        amounts = month["amount"][rows]
        assert 4 <= rows.size <= 7
        assert np.all((amounts[:-1] >= 1) & (amounts[:-1] <= 5))
        assert amounts[-1] > 100
        assert month["merchant_category"][rows[-1]] in {"electronics", "jewelry", "gift_cards"}
        assert month["event_time"][rows[-1]] - month["event_time"][rows[0]] < 45 * 60


def test_the_other_old_patterns_go_abroad_or_out_at_night(month: dict[str, np.ndarray]) -> None:
    cards = {card.card_id: card for card in TransactionSimulator(SimulatorConfig()).cards}
    abroad = month["pattern"] == "new_country"
    assert abroad.sum() > 100
    assert all(
        country != cards[card].home_country
        for card, country in zip(month["card_id"][abroad], month["country"][abroad], strict=True)
    )
    night = month["pattern"] == "odd_hour"
    assert night.sum() > 100
    assert set(month["hour"][night]) <= {2, 3, 4}


def test_the_concept_switch_changes_the_fraud_from_that_moment() -> None:
    switch = START + 10.5 * DAY
    plain = _window(SimulatorConfig(cards=1_000), 20)
    config = SimulatorConfig(cards=1_000, concept_drift_at=switch)
    switched = _window(config, 20)
    before, before_plain = switched["event_time"] < switch, plain["event_time"] < switch
    for name in COLUMNS:  # nothing before the moment changes
        assert np.array_equal(switched[name][before], plain[name][before_plain]), name
    assert set(switched["pattern"][before]) <= {"legit", *FRAUD_MIX_BEFORE}
    # Episodes under way at the switch finish within two days; then only the new pattern.
    settled = switched["event_time"] >= switch + 2 * DAY
    assert set(switched["pattern"][settled]) == {"legit", *FRAUD_MIX_AFTER}
    assert switched["is_fraud"][settled].mean() == pytest.approx(0.01, rel=0.3)
    new = switched["pattern"] == "online_mid"
    assert switched["event_time"][new].min() >= switch
    cards = {card.card_id: card for card in TransactionSimulator(config).cards}
    for i in np.flatnonzero(new):
        card = cards[switched["card_id"][i]]
        assert switched["country"][i] == card.home_country
        assert switched["merchant_category"][i] == "online"
        hour = switched["event_time"][i] / 3600 % 24
        assert card.active_from_hour <= hour < card.active_from_hour + card.active_hours


def test_the_data_switch_moves_legitimate_amounts_and_leaves_fraud_alone() -> None:
    switch = START + 10 * DAY
    plain = _window(SimulatorConfig(cards=1_000), 20)
    drifted = _window(SimulatorConfig(cards=1_000, data_drift_at=switch), 20)
    for name in ("event_time", "card_id", "country", "is_fraud", "pattern"):
        assert np.array_equal(drifted[name], plain[name]), name
    fraud = plain["is_fraud"] == 1
    assert np.array_equal(drifted["amount"][fraud], plain["amount"][fraud])
    after = plain["event_time"] >= switch
    assert np.array_equal(drifted["amount"][~after], plain["amount"][~after])
    legit_after = after & ~fraud
    ratio = np.median(drifted["amount"][legit_after]) / np.median(plain["amount"][legit_after])
    assert 1.5 < ratio < 1.8  # x1.6, and a little more from the shift to dearer merchants
    same = legit_after & (drifted["merchant_id"] == plain["merchant_id"])
    per_row = drifted["amount"][same] / plain["amount"][same]
    assert np.allclose(per_row, 1.6, rtol=0.02)  # cents rounding
    mix_before = Counter(plain["merchant_category"][legit_after].tolist())
    mix_after = Counter(drifted["merchant_category"][legit_after].tolist())
    assert mix_after["electronics"] > 1.5 * mix_before["electronics"]


def test_labels_come_after_the_purchase_and_stream_like_the_transactions() -> None:
    config = SimulatorConfig(cards=500, seed=9)
    simulator = TransactionSimulator(config)
    columns = _window(config, 10)
    known = simulator.labels_available_at(columns)
    delay = known - columns["event_time"]
    fraud = columns["is_fraud"] == 1
    assert np.allclose(delay[~fraud], LEGIT_LABEL_DELAY_S)
    shortest, longest = FRAUD_LABEL_DELAY_S
    assert np.all((delay[fraud] >= shortest) & (delay[fraud] <= longest))
    assert np.unique(np.round(delay[fraud])).size > fraud.sum() * 0.9
    late = columns["event_time"] >= START + 6 * DAY
    chunk = TransactionSimulator(config).generate(START + 6 * DAY, START + 10 * DAY)
    assert np.array_equal(TransactionSimulator(config).labels_available_at(chunk), known[late])


def test_label_delays_are_validated() -> None:
    simulator = TransactionSimulator(SimulatorConfig(cards=50))
    columns = simulator.generate(START, START + DAY)
    with pytest.raises(ValidationError, match="fraud_delay_s"):
        simulator.labels_available_at(columns, fraud_delay_s=(3600.0, 60.0))
    with pytest.raises(ValidationError, match="legit_delay_s"):
        simulator.labels_available_at(columns, legit_delay_s=-1.0)
    with pytest.raises(ValidationError, match="columns need 'event_time'"):
        simulator.labels_available_at({"transaction_id": columns["transaction_id"]})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cards", 0),
        ("cards", 2.5),
        ("cards", True),
        ("merchants", 5),
        ("transactions_per_day", 0.0),
        ("fraud_rate", -0.01),
        ("fraud_rate", 0.5),
        ("fraud_rate", float("nan")),
        ("start", float("inf")),
        ("seed", -1),
        ("concept_drift_at", "tomorrow"),
        ("data_drift_at", float("nan")),
        ("data_drift_scale", 0.0),
    ],
)
def test_a_bad_config_value_is_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=f"^{field} must be"):
        SimulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_a_bad_window_is_refused() -> None:
    simulator = TransactionSimulator(SimulatorConfig(cards=50))
    with pytest.raises(ValidationError, match="end must not be before start"):
        simulator.generate(START + DAY, START)
    with pytest.raises(ValidationError, match="^start must be a finite"):
        simulator.generate(float("nan"), START)
