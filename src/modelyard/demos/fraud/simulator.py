"""Card transactions with fraud in them, for the fraud demo: a world of cards, merchants and
fraudsters whose behaviour can be switched at a chosen moment.

What it simulates:

* **Cards with habits.** Each card draws, once, a home country, a typical amount (a
  lognormal: median and spread), a few favourite merchants with their shares, an active
  window of hours and a rate of purchases per day. A legitimate purchase happens in that
  window (3% at any hour), mostly at a favourite merchant (75%), mostly at home (98%), for
  the card's typical amount times its merchant category's factor (travel costs more than
  coffee).
* **Merchants.** ``merchants`` ids, each of one of twelve categories, with a popularity.
  (Cards and merchants are drawn in ``world.py``.)
* **Fraud episodes**, each on one compromised card, among that card's own purchases:

  - ``test_then_large``: 3-6 charges of 1-5 a few minutes apart (the fraudster checks the
    card works), then one large purchase at an electronics, jewellery or gift-card merchant;
  - ``new_country``: 2-6 purchases within hours in a country other than the card's home;
  - ``odd_hour``: 2-4 online or resellable purchases between 2 and 5 am, hours the card
    never keeps;
  - ``online_mid`` (after the concept switch): 3-5 online purchases of 2-3 times the card's
    typical amount, 5-20 minutes apart, at home, in the card's usual hours. A model that
    learnt the first three patterns sees little wrong with them (no test charges, no
    foreign country, no odd hour), which is the point of the switch; one trained on them
    can tell them by the spree against the card's habit.

  These are the textbook signatures of card fraud (card testing, cross-border use,
  night-time cash-out), so that a model trained on them learns features a real one would:
  velocity of small amounts, distance from home, hour against the card's habit.
* **A fraud rate**: fraudulent transactions are ``fraud_rate`` of all transactions, on
  average (episodes arrive as a Poisson process sized to give that rate).
* **Two switches.** ``concept_drift_at``: episodes that start from that moment on follow
  ``FRAUD_MIX_AFTER`` instead of ``FRAUD_MIX_BEFORE`` (an episode already under way
  finishes, so old patterns fade out within two days). ``data_drift_at``: from that moment
  legitimate amounts are ``data_drift_scale`` times larger (1.6 by default) and cards shop
  away from their favourites more often, at the merchants of a holiday season
  (electronics, clothing, jewellery, gift cards); the fraud is untouched.
* **Late labels.** ``labels_available_at`` says when each label becomes known: a fraud
  label with its chargeback, hours to a week after the purchase; a legitimate one when
  the chargeback window closes, a week after.

Everything is decided by the seed: the same config gives the same transactions, and
``generate`` over consecutive windows gives exactly the events of one call over their
union, because each UTC day is drawn from a random stream of its own (keyed on the seed
and the day) and then cut to the window. A day's fraud episodes may run into the next day
(at most two days from the day's start), so a window also draws the day before it. Times
are UTC seconds; the simulated world keeps one time zone, so ``hour`` is the card's local
hour too.

It is hand-written because nothing off the shelf does this: the public fraud data sets
are fixed tables (no drift to switch on, no stream), and generic generators
(scikit-learn's ``make_classification``, faker-style row makers) have no cards with
habits, no episodes and no time.

Speed: 2,000 cards x 3 purchases a day x 30 days (183,170 rows) generate in 0.15 s (median
of 7, building the simulator 0.01 s more) on one core of an AMD EPYC development machine;
streamed hour by hour, the same 30 days take 0.21 s (numpy, vectorised per day; the few
hundred fraud episodes are drawn one by one).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np

from modelyard.demos.fraud.world import (
    CATEGORIES,
    CATEGORY_AMOUNT,
    COUNTRIES,
    COUNTRY_SHARE,
    Card,
    Merchant,
    World,
    shares_cdf,
)
from modelyard.errors import ValidationError

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "COUNTRIES",
    "FRAUD_LABEL_DELAY_S",
    "FRAUD_MIX_AFTER",
    "FRAUD_MIX_BEFORE",
    "LEGIT_LABEL_DELAY_S",
    "PATTERNS",
    "Card",
    "Merchant",
    "SimulatorConfig",
    "TransactionSimulator",
]

DAY = 86_400.0
HOUR = 3_600.0

PATTERNS = ("legit", "test_then_large", "new_country", "odd_hour", "online_mid")
FRAUD_MIX_BEFORE: Mapping[str, float] = MappingProxyType(
    {"test_then_large": 0.45, "new_country": 0.30, "odd_hour": 0.25}
)
FRAUD_MIX_AFTER: Mapping[str, float] = MappingProxyType({"online_mid": 1.0})
# Transactions per episode, (fewest, most), the large purchase of test_then_large included.
_EPISODE_SIZE = {
    "test_then_large": (4, 7),
    "new_country": (2, 6),
    "odd_hour": (2, 4),
    "online_mid": (3, 5),
}

COLUMNS = (
    "transaction_id",
    "card_id",
    "event_time",
    "amount",
    "merchant_id",
    "merchant_category",
    "country",
    "hour",
    "is_fraud",
    "pattern",
)

# A legitimate label is "no chargeback came", known once the chargeback window closes; a
# fraud label arrives with the chargeback, some hours to a week after the purchase.
LEGIT_LABEL_DELAY_S = 7 * DAY
FRAUD_LABEL_DELAY_S = (2 * HOUR, 7 * DAY)

_OFF_HOURS_SHARE = 0.03
_FAVOURITE_SHARE = 0.75
_FAVOURITE_SHARE_HOLIDAY = 0.5
_ABROAD_SHARE = 0.02
_SPILL_DAYS = 1  # a day's episodes end before the end of the next day
_CACHED_DAYS = 8

# Random streams, so that each part of the world draws independently of the others.
_LEGIT, _FRAUD, _EPISODE = 2, 3, 4  # world.py uses 0 and 1

# Merchants fraud goes to, by pattern step.
_FRAUD_GROUPS = {
    "test": ("online",),
    "large": ("electronics", "jewelry", "gift_cards"),
    "spree": ("electronics", "jewelry", "clothing", "gift_cards", "travel", "restaurant"),
    "night": ("online", "electronics", "gift_cards"),
    "online": ("online",),
}


@dataclass(frozen=True)
class SimulatorConfig:
    """The world to simulate. Times are UNIX seconds (UTC)."""

    cards: int = 2_000
    merchants: int = 200
    transactions_per_day: float = 3.0  # mean over cards; each card has its own rate
    fraud_rate: float = 0.01  # fraudulent share of all transactions
    start: float = 1_704_067_200.0  # 2024-01-01T00:00Z: no transaction before it
    seed: int = 0
    concept_drift_at: float | None = None  # fraud switches to FRAUD_MIX_AFTER
    data_drift_at: float | None = None  # legitimate amounts and merchants shift
    data_drift_scale: float = 1.6  # legitimate amounts x this after data_drift_at

    def __post_init__(self) -> None:
        _check_int("cards", self.cards, 1, 1_000_000)
        _check_int("merchants", self.merchants, len(CATEGORIES), 100_000)
        _check_number("transactions_per_day", self.transactions_per_day, 0.01, 100.0)
        _check_number("fraud_rate", self.fraud_rate, 0.0, 0.2)
        _check_number("start", self.start, 0.0, 1e11)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if self.concept_drift_at is not None:
            _check_number("concept_drift_at", self.concept_drift_at, 0.0, 1e11)
        if self.data_drift_at is not None:
            _check_number("data_drift_at", self.data_drift_at, 0.0, 1e11)
        _check_number("data_drift_scale", self.data_drift_scale, 0.1, 10.0)


@dataclass(frozen=True)
class _Rows:
    """Transactions as integer codes, before they become the output's strings."""

    day: np.ndarray  # int64, the day whose stream drew the row
    rank: np.ndarray  # int64, place among that day's rows by time
    time: np.ndarray  # float64
    amount: np.ndarray  # float64
    card: np.ndarray  # int64
    merchant: np.ndarray  # int64
    country: np.ndarray  # int64
    pattern: np.ndarray  # int64, index into PATTERNS


class TransactionSimulator:
    """Transactions of the world ``config`` describes, drawn window by window.

    ``generate(a, b)`` then ``generate(b, c)`` gives exactly ``generate(a, c)``. The
    simulator keeps the last few days it drew, so streaming short windows is cheap.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._world = world = World(
            cards=config.cards,
            merchants=config.merchants,
            transactions_per_day=config.transactions_per_day,
            seed=config.seed,
        )
        self._groups = {group: world.merchants_in(c) for group, c in _FRAUD_GROUPS.items()}
        mean_size = {p: sum(_EPISODE_SIZE[p]) / 2 for p in _EPISODE_SIZE}
        fraud_per_day = config.fraud_rate / (1 - config.fraud_rate) * float(world.rate.sum())
        # Episodes arrive at fraud_per_day / (mean episode size of the mix in force); the
        # candidates come at the highest such rate and are thinned, so that a switch at
        # any moment leaves the draws before it unchanged.
        smallest = min(mean_size.values())
        self._candidates_per_day = fraud_per_day / smallest
        self._mixes = {
            switched: (
                tuple(mix),
                shares_cdf(np.array(list(mix.values()))),
                smallest / sum(share * mean_size[p] for p, share in mix.items()),
            )
            for switched, mix in ((False, FRAUD_MIX_BEFORE), (True, FRAUD_MIX_AFTER))
        }
        self._days: OrderedDict[int, _Rows] = OrderedDict()

    @property
    def cards(self) -> tuple[Card, ...]:
        """Every card's habits, in card id order."""
        return self._world.cards()

    @property
    def merchants(self) -> tuple[Merchant, ...]:
        """Every merchant, in merchant id order."""
        return self._world.merchants()

    # -- generation --------------------------------------------------------------------

    def generate(self, start: float, end: float) -> dict[str, np.ndarray]:
        """Every transaction with ``start <= event_time < end``, sorted by event time.

        Columns (``COLUMNS``), all of one length: ``transaction_id``, ``card_id``,
        ``merchant_id``, ``merchant_category``, ``country`` and ``pattern`` (one of
        ``PATTERNS``) are strings; ``event_time`` and ``amount`` floats; ``hour`` (UTC)
        and ``is_fraud`` (0 or 1) integers.
        """
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, Real) or not math.isfinite(value):
                raise ValidationError(f"{name} must be a finite UNIX time, got {value!r}")
        if end < start:
            raise ValidationError(f"end must not be before start, got start={start} end={end}")
        low = max(float(start), self.config.start)
        first = max(math.floor(low / DAY) - _SPILL_DAYS, math.floor(self.config.start / DAY))
        days = [self._day(d) for d in range(first, math.ceil(end / DAY))] if end > low else []
        rows = _concat(days)
        inside = np.flatnonzero((rows.time >= low) & (rows.time < end))
        order = inside[np.argsort(rows.time[inside], kind="stable")]
        return self._columns(_take(rows, order))

    def labels_available_at(
        self,
        columns: Mapping[str, np.ndarray],
        *,
        legit_delay_s: float = LEGIT_LABEL_DELAY_S,
        fraud_delay_s: tuple[float, float] = FRAUD_LABEL_DELAY_S,
    ) -> np.ndarray:
        """When each transaction's label becomes known (UNIX seconds, float64).

        A legitimate one after ``legit_delay_s``; a fraudulent one when its chargeback
        arrives, log-uniformly within ``fraud_delay_s``, the same for the same transaction
        whichever window it came in (the delay hashes the seed and the transaction id).
        """
        shortest, longest = fraud_delay_s
        if not 0 < shortest <= longest:
            raise ValidationError(
                f"fraud_delay_s must be (shortest, longest) with 0 < shortest <= longest, "
                f"got {fraud_delay_s!r}"
            )
        if not legit_delay_s >= 0:
            raise ValidationError(f"legit_delay_s must be >= 0, got {legit_delay_s!r}")
        for name in ("transaction_id", "event_time", "is_fraud"):
            if name not in columns:
                raise ValidationError(f"columns need {name!r}, got {sorted(columns)}")
        times = np.asarray(columns["event_time"], dtype=np.float64)
        known = times + legit_delay_s
        key = self.config.seed.to_bytes(8, "little")
        span = math.log(longest / shortest)
        for i in np.flatnonzero(np.asarray(columns["is_fraud"]) == 1):
            digest = hashlib.blake2b(
                str(columns["transaction_id"][i]).encode(), digest_size=8, key=key
            ).digest()
            fraction = int.from_bytes(digest, "little") / 2**64
            known[i] = times[i] + shortest * math.exp(fraction * span)
        return known

    def _day(self, day: int) -> _Rows:
        """Every transaction the stream of ``day`` draws, ranked by time (cached)."""
        if day in self._days:
            self._days.move_to_end(day)
            return self._days[day]
        rows = _concat([self._legit(day), self._fraud(day)])
        order = np.argsort(rows.time, kind="stable")
        rows = _take(rows, order)
        rows = replace(rows, rank=np.arange(order.size, dtype=np.int64))
        self._days[day] = rows
        if len(self._days) > _CACHED_DAYS:
            self._days.popitem(last=False)
        return rows

    def _legit(self, day: int) -> _Rows:
        config, world = self.config, self._world
        rng = np.random.default_rng([config.seed, _LEGIT, day])
        card = np.repeat(np.arange(config.cards), rng.poisson(world.rate))
        # The same draws whatever the switches say, so that turning data drift on changes
        # values and never which transactions exist.
        u_time, u_off, u_fav, u_pick, u_any, u_abroad, u_where = rng.random((7, card.size))
        z = rng.standard_normal(card.size)
        hours = np.where(
            u_off < _OFF_HOURS_SHARE,
            u_time * 24.0,
            world.active_from[card] + u_time * world.active_hours[card],
        )
        time = day * DAY + hours * HOUR
        holiday = (
            time >= config.data_drift_at
            if config.data_drift_at is not None
            else np.zeros(card.size, dtype=bool)
        )
        favourite = world.favourites[card, (world.favourite_cdf[card] < u_pick[:, None]).sum(1)]
        anywhere = np.where(
            holiday,
            np.searchsorted(world.holiday_cdf, u_any, side="right"),
            np.searchsorted(world.popularity_cdf, u_any, side="right"),
        )
        share = np.where(holiday, _FAVOURITE_SHARE_HOLIDAY, _FAVOURITE_SHARE)
        merchant = np.where(u_fav < share, favourite, anywhere)
        log_amount = (
            world.mu[card]
            + np.log(CATEGORY_AMOUNT[world.category[merchant]])
            + world.sigma[card] * z
        )
        amount = np.exp(log_amount) * np.where(holiday, config.data_drift_scale, 1.0)
        home = world.home[card]
        trip = np.searchsorted(shares_cdf(COUNTRY_SHARE), u_where, side="right")
        trip = np.where(trip == home, (trip + 1) % len(COUNTRIES), trip)
        country = np.where(u_abroad < _ABROAD_SHARE, trip, home)
        return _rows(day, time, amount, card, merchant, country, np.zeros(card.size, np.int64))

    def _fraud(self, day: int) -> _Rows:
        config = self.config
        rng = np.random.default_rng([config.seed, _FRAUD, day])
        count = int(rng.poisson(self._candidates_per_day))
        anchor = day * DAY + rng.random(count) * DAY
        u_keep, u_pattern = rng.random((2, count))
        card = rng.integers(0, config.cards, count)
        episodes = []
        for k in range(count):
            switched = config.concept_drift_at is not None and anchor[k] >= config.concept_drift_at
            names, cdf, keep = self._mixes[switched]
            if u_keep[k] >= keep:
                continue
            pattern = names[int(np.searchsorted(cdf, u_pattern[k], side="right"))]
            episode_rng = np.random.default_rng([config.seed, _EPISODE, day, k])
            episodes.append(
                self._episode(pattern, episode_rng, int(card[k]), float(anchor[k]), day)
            )
        return _concat(episodes)

    def _episode(
        self, pattern: str, rng: np.random.Generator, card: int, anchor: float, day: int
    ) -> _Rows:
        """One fraud episode on ``card``; every event at or after ``anchor``."""
        world = self._world
        low, high = _EPISODE_SIZE[pattern]
        size = int(rng.integers(low, high + 1))
        home = int(world.home[card])
        country = np.full(size, home)
        if pattern == "test_then_large":
            gaps = np.append(rng.uniform(20.0, 240.0, size - 2), rng.uniform(120.0, 900.0))
            time = anchor + np.concatenate([[0.0], np.cumsum(gaps)])
            amount = np.append(rng.uniform(1.0, 5.0, size - 1), rng.lognormal(math.log(900), 0.45))
            merchant = np.append(self._pick(rng, "test", size - 1), self._pick(rng, "large", 1))
        elif pattern == "new_country":
            time = anchor + np.concatenate([[0.0], np.cumsum(rng.uniform(300.0, 2700.0, size - 1))])
            amount = rng.lognormal(math.log(220.0), 0.7, size)
            merchant = self._pick(rng, "spree", size)
            country[:] = (home + rng.integers(1, len(COUNTRIES))) % len(COUNTRIES)
        elif pattern == "odd_hour":
            first = math.floor(anchor / DAY) * DAY + rng.uniform(2.0, 4.0) * HOUR
            first += DAY if first < anchor else 0.0
            time = first + np.concatenate([[0.0], np.cumsum(rng.uniform(180.0, 900.0, size - 1))])
            amount = rng.lognormal(math.log(300.0), 0.6, size)
            merchant = self._pick(rng, "night", size)
        else:  # online_mid: looks like the card's own shopping, only more of it, at once
            # a spree of 5-20 minutes between purchases (at most 80), inside active hours
            first = rng.random() * (world.active_hours[card] - 1.5)
            gaps = np.cumsum(rng.uniform(5.0, 20.0, size - 1)) / 60.0
            hours = world.active_from[card] + first + np.concatenate([[0.0], gaps])
            base = math.floor(anchor / DAY) * DAY
            base += DAY if base + hours[0] * HOUR < anchor else 0.0
            time = base + hours * HOUR
            amount = np.exp(world.mu[card] + rng.uniform(math.log(2.0), math.log(3.0), size))
            merchant = self._pick(rng, "online", size)
        code = np.full(size, PATTERNS.index(pattern))
        return _rows(day, time, amount, np.full(size, card), merchant, country, code)

    def _pick(self, rng: np.random.Generator, group: str, size: int) -> np.ndarray:
        members, cdf = self._groups[group]
        return members[np.searchsorted(cdf, rng.random(size), side="right")]

    def _columns(self, rows: _Rows) -> dict[str, np.ndarray]:
        ids = [f"t{d}-{r:06d}" for d, r in zip(rows.day.tolist(), rows.rank.tolist(), strict=True)]
        return {
            "transaction_id": np.array(ids, dtype=np.str_),
            "card_id": self._world.card_ids[rows.card],
            "event_time": rows.time,
            "amount": rows.amount,
            "merchant_id": self._world.merchant_ids[rows.merchant],
            "merchant_category": np.array(CATEGORIES)[self._world.category[rows.merchant]],
            "country": np.array(COUNTRIES)[rows.country],
            "hour": (rows.time // HOUR % 24).astype(np.int64),
            "is_fraud": (rows.pattern > 0).astype(np.int64),
            "pattern": np.array(PATTERNS)[rows.pattern],
        }


def _rows(
    day: int,
    time: np.ndarray,
    amount: np.ndarray,
    card: np.ndarray,
    merchant: np.ndarray,
    country: np.ndarray,
    pattern: np.ndarray,
) -> _Rows:
    return _Rows(
        day=np.full(time.size, day, dtype=np.int64),
        rank=np.zeros(time.size, dtype=np.int64),
        time=np.asarray(time, dtype=np.float64),
        amount=np.maximum(np.round(np.asarray(amount, dtype=np.float64), 2), 0.01),
        card=np.asarray(card, dtype=np.int64),
        merchant=np.asarray(merchant, dtype=np.int64),
        country=np.asarray(country, dtype=np.int64),
        pattern=np.asarray(pattern, dtype=np.int64),
    )


_NAMES = tuple(f.name for f in fields(_Rows))


def _concat(parts: list[_Rows]) -> _Rows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _rows(0, np.zeros(0), np.zeros(0), empty, empty, empty, empty)
    return _Rows(
        **{name: np.concatenate([getattr(part, name) for part in parts]) for name in _NAMES}
    )


def _take(rows: _Rows, index: np.ndarray) -> _Rows:
    return _Rows(**{name: getattr(rows, name)[index] for name in _NAMES})


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= int(value) <= high:
        raise ValidationError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or not low <= float(value) <= high
    ):
        raise ValidationError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
