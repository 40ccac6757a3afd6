"""Who may take a lease, and what the taker gets: the rules every repository applies."""

from __future__ import annotations

from modelyard.pipelines import Lease
from modelyard.pipelines.leases import lease_free, taken_lease


def test_a_name_is_free_with_no_row_once_expired_or_when_its_holder_is_gone() -> None:
    held = Lease("runner:serve", "a", 100.0, 110.0, 4)
    assert lease_free(None, 100.0, holder_gone=False)
    assert not lease_free(held, 109.999, holder_gone=False)
    assert lease_free(held, 110.0, holder_gone=False)  # expires_at is the first free instant
    assert lease_free(held, 105.0, holder_gone=True)


def test_a_taker_gets_the_next_generation_until_now_plus_its_time_to_live() -> None:
    assert taken_lease(None, "fraud", "a", 5.0, 60.0) == Lease("fraud", "a", 5.0, 65.0, 1)
    held = Lease("runner:serve", "a", 100.0, 110.0, 4)
    assert taken_lease(held, "runner:serve", "b", 111.0, 10.0) == Lease(
        "runner:serve", "b", 111.0, 121.0, 5
    )
