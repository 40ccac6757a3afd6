"""``modelyard demo recommender``: popularity against matrix factorisation on simulated users,
served, A/B tested, and retrained once on the clicks it served (docs/recommender.md)."""
