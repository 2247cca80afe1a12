"""TokenBucket: a greedy spender never exceeds the venue's per-minute limit in any 60 s window; pauses hold."""

import bisect
import itertools

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from posmon.ratelimit import TokenBucket

WINDOW = 60.0


def spend_greedily(
    bucket: TokenBucket, weight: float, *, start: float, step: float, duration: float
) -> list[tuple[float, float]]:
    """Step the clock; at every step take ``weight`` as often as the bucket allows. Returns (time, weight) spends."""
    spends = []
    for n in itertools.count():
        now = start + n * step
        if now > start + duration:
            return spends
        while bucket.wait_time(weight, now) <= 0:
            bucket.take(weight, now)
            spends.append((now, weight))


def busiest_window(spends: list[tuple[float, float]]) -> float:
    """The largest weight spent in any half-open window [t, t + 60 s) (the busiest one starts at a spend)."""
    times = [t for t, _ in spends]
    prefix = [0.0, *itertools.accumulate(w for _, w in spends)]
    best = 0.0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + WINDOW)
        best = max(best, prefix[j] - prefix[i])
    return best


@pytest.mark.parametrize(("per_minute", "weight"), [(2400, 1), (2400, 5), (1200, 5), (1200, 1), (10, 1), (1, 1)])
def test_greedy_spending_stays_under_the_per_minute_limit(per_minute, weight):
    bucket = TokenBucket.for_limit(per_minute, 0.0)
    spends = spend_greedily(bucket, weight, start=0.0, step=0.1, duration=300.0)
    assert busiest_window(spends) <= per_minute
    assert spends  # it does let work through


def test_for_limit_spends_about_the_safety_share_of_the_limit_per_minute():
    bucket = TokenBucket.for_limit(1200, 0.0)
    spends = spend_greedily(bucket, 1, start=0.0, step=0.5, duration=600.0)
    # After the initial burst the steady rate is 0.95 * 1200 - 240 = 900 per minute.
    late = [w for t, w in spends if 300.0 <= t < 360.0]
    assert 890 <= sum(late) <= 910
    assert busiest_window(spends) <= 0.95 * 1200


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    per_minute=st.integers(1, 3000),
    weight_share=st.floats(0.0, 1.0),
    step=st.sampled_from([0.05, 0.1, 0.25, 1.0, 3.0, 17.0]),
    start=st.sampled_from([0.0, 12.5, 1_000_000.0]),
)
def test_no_60s_window_ever_exceeds_the_limit(per_minute, weight_share, step, start):
    bucket = TokenBucket.for_limit(per_minute, start)
    weight = max(1, int(bucket.capacity * weight_share))  # whole weights up to the bucket's size
    spends = spend_greedily(bucket, weight, start=start, step=step, duration=200.0)
    assert busiest_window(spends) <= per_minute


def test_calls_heavier_than_the_burst_still_respect_the_limit():
    # e.g. FetchAccount = positions (5) + open orders (40) = 45 against weight_per_minute = 100.
    bucket = TokenBucket.for_limit(100, 0.0, max_weight=45)
    spends = spend_greedily(bucket, 45, start=0.0, step=0.1, duration=300.0)
    assert busiest_window(spends) <= 100
    assert spends


def test_a_call_heavier_than_the_bucket_is_refused_rather_than_overspending():
    bucket = TokenBucket.for_limit(100, 0.0)
    with pytest.raises(ValueError, match="exceeds the bucket's capacity"):
        bucket.wait_time(45, 0.0)
    with pytest.raises(ValueError, match="cannot be paced"):
        TokenBucket.for_limit(100, 0.0, max_weight=100)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    per_minute=st.integers(2, 3000),
    weight_share=st.floats(0.0, 0.94),
    small=st.integers(1, 5),
    step=st.sampled_from([0.05, 0.25, 1.0, 3.0]),
)
def test_mixed_heavy_and_light_calls_stay_under_the_limit(per_minute, weight_share, small, step):
    heavy = max(1, int(per_minute * weight_share))
    bucket = TokenBucket.for_limit(per_minute, 0.0, max_weight=heavy)
    spends = []
    for n in range(int(200 / step)):
        now = n * step
        for weight in (heavy, min(small, heavy)):
            while bucket.wait_time(weight, now) <= 0:
                bucket.take(weight, now)
                spends.append((now, weight))
    assert busiest_window(spends) <= per_minute


# --- pause ------------------------------------------------------------------------------------------------------


def test_pause_blocks_every_weight_until_its_end():
    bucket = TokenBucket.for_limit(2400, 0.0)
    bucket.pause(30.0)
    for now in (0.0, 1.0, 15.5, 29.99):
        wait = bucket.wait_time(1, now)
        assert wait > 0
        assert now + wait >= 30.0


def test_pause_empties_the_bucket_so_spending_resumes_at_the_refill_rate():
    bucket = TokenBucket.for_limit(2400, 0.0)  # capacity 480, 28 tokens/s
    bucket.pause(30.0)
    assert bucket.wait_time(1, 30.0) == pytest.approx(1 / bucket.rate)
    assert bucket.wait_time(28, 31.0) == pytest.approx(0.0)
    spends = spend_greedily(bucket, 1, start=30.0, step=0.1, duration=60.0)
    assert spends[0][0] >= 30.0
    assert busiest_window(spends) <= 0.95 * 2400


def test_a_shorter_pause_never_shortens_a_longer_one():
    bucket = TokenBucket.for_limit(2400, 0.0)
    bucket.pause(60.0)
    bucket.pause(10.0)
    assert bucket.wait_time(1, 20.0) == pytest.approx(40.0)
    bucket.pause(90.0)
    assert bucket.wait_time(1, 20.0) == pytest.approx(70.0)


async def test_a_paced_caller_sleeps_until_the_pause_ends(autojump_clock):
    bucket = TokenBucket.for_limit(2400, trio.current_time())
    start = trio.current_time()
    bucket.take(5, start)
    bucket.pause(start + 30.0)

    async def acquire(weight: float) -> float:  # the gateway's pacing loop
        while True:
            now = trio.current_time()
            wait = bucket.wait_time(weight, now)
            if wait <= 0:
                bucket.take(weight, now)
                return now
            await trio.sleep(wait)

    first = await acquire(5)
    assert first >= start + 30.0
    assert first - start == pytest.approx(30.0 + 5 / bucket.rate)


def test_pause_during_greedy_spending_keeps_every_window_under_the_limit():
    bucket = TokenBucket.for_limit(600, 0.0)
    spends = spend_greedily(bucket, 2, start=0.0, step=0.1, duration=40.0)
    bucket.pause(70.0)
    assert bucket.wait_time(2, 40.1) > 0
    spends += spend_greedily(bucket, 2, start=40.1, step=0.1, duration=200.0)
    assert not [t for t, _ in spends if 40.0 < t < 70.0]
    assert busiest_window(spends) <= 600


def test_headroom_reads_the_refilled_level_without_spending_and_is_zero_while_paused():
    bucket = TokenBucket.for_limit(1200, 0.0)
    assert bucket.headroom(0.0) == 1.0
    bucket.take(bucket.capacity * 0.75, 0.0)
    assert bucket.headroom(0.0) == pytest.approx(0.25)
    later = 0.25 * bucket.capacity / bucket.rate  # a quarter of the burst refills
    assert bucket.headroom(later) == pytest.approx(0.5)
    assert bucket.headroom(later) == pytest.approx(0.5)  # reading spends nothing
    assert bucket.headroom(1e9) == 1.0  # never above a full bucket
    bucket.pause(until=later + 5)
    assert bucket.headroom(later + 1) == 0.0
