"""The cards and merchants of the simulated world, drawn once from a seed.

A ``World`` keeps them as numpy arrays, one entry per card or per merchant, for the
simulator's vectorised draws; ``cards()`` and ``merchants()`` give readable views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CATEGORIES", "COUNTRIES", "Card", "Merchant", "World", "shares_cdf"]

CATEGORIES = (
    "grocery",
    "fuel",
    "restaurant",
    "pharmacy",
    "clothing",
    "home_garden",
    "entertainment",
    "online",
    "electronics",
    "travel",
    "jewelry",
    "gift_cards",
)
# Per category, in CATEGORIES order: share of merchants; how often people shop there
# (everyday categories make the favourites); amount factor (x a card's typical amount);
# and the holiday season's boost to its popularity.
_CATEGORY_SHARE = np.array([16, 10, 14, 6, 8, 6, 7, 12, 6, 5, 4, 6], dtype=np.float64)
_CATEGORY_FREQUENCY = np.array([1.0, 0.8, 1.0, 0.5, 0.3, 0.25, 0.4, 0.8, 0.1, 0.08, 0.04, 0.15])
CATEGORY_AMOUNT = np.array([1.0, 1.1, 0.7, 0.6, 1.5, 1.6, 0.9, 1.1, 3.0, 4.0, 3.5, 1.2])
_HOLIDAY_BOOST = np.array([1.0, 0.8, 1.2, 1.0, 3.0, 1.5, 1.5, 2.0, 4.0, 1.0, 4.0, 4.0])

COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "BR", "IN", "MX", "PL", "JP")
# Share of cards at home in each country; also where cardholders travel to.
COUNTRY_SHARE = np.array([30, 12, 10, 9, 7, 7, 5, 6, 4, 3, 3, 2, 1, 1], dtype=np.float64)

_MAX_FAVOURITES = 8
# Random streams of the world; the simulator's streams come after these.
_MERCHANT_STREAM, _CARD_STREAM = 0, 1


@dataclass(frozen=True)
class Card:
    """One card's habits."""

    card_id: str
    home_country: str
    amount_median: float  # the card's typical amount, before the category factor
    amount_sigma: float  # spread of log(amount)
    merchant_ids: tuple[str, ...]  # favourites
    merchant_shares: tuple[float, ...]  # of the card's purchases at favourites
    active_from_hour: float
    active_hours: float  # the card shops in [from, from + hours), never past midnight
    transactions_per_day: float


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    category: str
    popularity: float  # relative chance of a purchase away from a card's favourites


class World:
    """``cards`` cards and ``merchants`` merchants; the same seed draws the same world."""

    def __init__(self, *, cards: int, merchants: int, transactions_per_day: float, seed: int):
        rng = np.random.default_rng([seed, _MERCHANT_STREAM])
        # One merchant of each category at least, so that every category has somewhere
        # to shop.
        rest = rng.choice(
            len(CATEGORIES), merchants - len(CATEGORIES), p=_CATEGORY_SHARE / _CATEGORY_SHARE.sum()
        )
        self.category = np.concatenate([np.arange(len(CATEGORIES)), rest])
        self.popularity = rng.lognormal(0.0, 1.0, merchants) * _CATEGORY_FREQUENCY[self.category]
        self.popularity_cdf = shares_cdf(self.popularity)
        self.holiday_cdf = shares_cdf(self.popularity * _HOLIDAY_BOOST[self.category])
        width = max(4, len(str(merchants - 1)))
        self.merchant_ids = np.array([f"m{i:0{width}d}" for i in range(merchants)])

        rng = np.random.default_rng([seed, _CARD_STREAM])
        self.home = rng.choice(len(COUNTRIES), cards, p=COUNTRY_SHARE / COUNTRY_SHARE.sum())
        self.mu = rng.normal(math.log(35.0), 0.5, cards)
        self.sigma = rng.uniform(0.35, 0.8, cards)
        self.active_from = rng.uniform(5.0, 14.0, cards)
        self.active_hours = rng.uniform(6.0, 10.0, cards)
        self.rate = rng.gamma(4.0, transactions_per_day / 4.0, cards)
        # Favourites: popularity-weighted draws without replacement (Gumbel top-k), each
        # card keeping 3 to 8 of them with shares of its own.
        keys = np.log(self.popularity) + rng.gumbel(size=(cards, merchants))
        top = min(_MAX_FAVOURITES, merchants)
        self.favourites = np.argsort(-keys, axis=1)[:, :top]
        kept = rng.integers(3, top + 1, cards)
        shares = rng.gamma(1.0, 1.0, (cards, top)) * (np.arange(top) < kept[:, None])
        self.favourite_shares = shares / shares.sum(axis=1, keepdims=True)
        # Padded with 1 past the last kept favourite, so that counting the entries below a
        # uniform draw picks a kept one.
        self.favourite_cdf = np.cumsum(self.favourite_shares, axis=1)
        self.favourite_cdf[np.arange(top) >= kept[:, None] - 1] = 1.0
        width = max(5, len(str(cards - 1)))
        self.card_ids = np.array([f"c{i:0{width}d}" for i in range(cards)])

    def merchants_in(self, categories: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The merchants of ``categories`` and the cdf of their popularity."""
        members = np.flatnonzero(np.isin(self.category, [CATEGORIES.index(c) for c in categories]))
        return members, shares_cdf(self.popularity[members])

    def cards(self) -> tuple[Card, ...]:
        """Every card's habits, in card id order."""
        return tuple(
            Card(
                card_id=str(self.card_ids[i]),
                home_country=COUNTRIES[self.home[i]],
                amount_median=float(math.exp(self.mu[i])),
                amount_sigma=float(self.sigma[i]),
                merchant_ids=tuple(
                    str(self.merchant_ids[m])
                    for m, share in zip(self.favourites[i], self.favourite_shares[i], strict=True)
                    if share > 0
                ),
                merchant_shares=tuple(float(s) for s in self.favourite_shares[i] if s > 0),
                active_from_hour=float(self.active_from[i]),
                active_hours=float(self.active_hours[i]),
                transactions_per_day=float(self.rate[i]),
            )
            for i in range(self.card_ids.size)
        )

    def merchants(self) -> tuple[Merchant, ...]:
        """Every merchant, in merchant id order."""
        return tuple(
            Merchant(str(self.merchant_ids[i]), CATEGORIES[c], float(self.popularity[i]))
            for i, c in enumerate(self.category)
        )


def shares_cdf(weights: np.ndarray) -> np.ndarray:
    """Cumulative shares ending at exactly 1, for ``searchsorted(side="right")`` on
    uniforms in [0, 1)."""
    cdf = np.cumsum(weights, dtype=np.float64) / float(np.sum(weights))
    cdf[-1] = 1.0
    return cdf
