"""The nonce keeper: fetched once, counted locally, batches consecutive, re-fetched when its fate is unknown."""

from __future__ import annotations

from posmon.exchange.lighter.nonce import NonceKeeper


class Venue:
    def __init__(self, nonce: int) -> None:
        self.nonce = nonce
        self.asked = 0

    async def fetch(self) -> int:
        self.asked += 1
        return self.nonce


async def test_fetched_once_then_counted_locally_and_batches_are_consecutive() -> None:
    venue = Venue(40)
    keeper = NonceKeeper(venue.fetch)
    assert list(await keeper.take()) == [40]
    assert list(await keeper.take(3)) == [41, 42, 43]
    assert list(await keeper.take()) == [44]
    assert venue.asked == 1


async def test_invalidated_nonce_is_fetched_again_before_the_next_send() -> None:
    venue = Venue(7)
    keeper = NonceKeeper(venue.fetch)
    await keeper.take(2)
    venue.nonce = 12  # e.g. a refused tx did not consume its nonce, or another sender used the key
    keeper.invalidate("21104 invalid nonce")
    assert list(await keeper.take()) == [12]
    assert venue.asked == 2


async def test_a_nonce_given_back_unused_is_handed_out_again() -> None:
    keeper = NonceKeeper(Venue(3).fetch)
    (n,) = await keeper.take()
    keeper.give_back(n)
    assert list(await keeper.take()) == [3]
    keeper.give_back(1)  # not the last one: the count can no longer be trusted
    assert not keeper.known
