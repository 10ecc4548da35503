"""Fairness of the lucky draw's sampling, tested on the script's own code: draw_pick.lua
(reduce and pick, which draw.lua runs for every draw) run inside the real Redis in batch
mode (draw_batch.lua prepends the same file), over 10^6 draws per table.

The random values are 48-bit integers from SHAKE-256 over a fixed seed: a cryptographic
stream like the ``secrets`` values a draw sends, made reproducible so the test has one
outcome (a p-value threshold on live randomness would fail 1% of runs by design).
Chi-square p-values come from the regularized upper gamma (tests/forms/chi_square.py).
A Python port of reduce and pick gives the same counts on the same values, so the
boundary cases below pin the exact arithmetic, not just the distribution."""

from __future__ import annotations

import hashlib

import pytest

from services.forms import sample_batch
from tests.forms.chi_square import chi_square_p, upper_gamma_q

TWO48 = 1 << 48
DRAWS = 1_000_000
CHUNK = 100_000


def stream(seed: str, count: int) -> list[int]:
    raw = hashlib.shake_256(seed.encode()).digest(6 * count)
    return [int.from_bytes(raw[i : i + 6], "big") for i in range(0, 6 * count, 6)]


def reference(weights: list[int], randoms: list[int]) -> tuple[list[int], int]:
    """reduce and pick of draw_pick.lua, in Python integers."""
    total = sum(weights)
    limit = total * (TWO48 // total)
    counts, rejected = [0] * len(weights), 0
    for r in randoms:
        if r >= limit:
            rejected += 1
            continue
        u, acc = r % total, 0
        for i, w in enumerate(weights):
            acc += w
            if u < acc:
                counts[i] += 1
                break
    return counts, rejected


async def _run(redis, weights: list[int], randoms: list[int]) -> tuple[list[int], int]:
    counts, rejected = [0] * len(weights), 0
    for start in range(0, len(randoms), CHUNK):
        part, rej = await sample_batch(redis, weights, randoms[start : start + CHUNK])
        counts = [a + b for a, b in zip(counts, part, strict=True)]
        rejected += rej
    return counts, rejected


TABLES = {
    "uniform": [1, 1, 1, 1, 1, 1],
    "skewed": [5, 20, 75, 900],
    # Tiny weights: odds of 7 and 93 in a million, next to a huge "no prize".
    "tiny": [7, 93, 9_900, 990_000],
    # A total near the spec's bound and no power of two (the case modulo bias would hit).
    "large_total": [1, 333_333_333, 333_333_333, 333_333_332, 999],
    "twenty": list(range(1, 21)),
}


@pytest.mark.parametrize("name", sorted(TABLES))
async def test_a_million_draws_fit_the_weights(redis, name):
    weights = TABLES[name]
    randoms = stream(f"lucky-draw-{name}", DRAWS)
    counts, rejected = await _run(redis, weights, randoms)
    assert (counts, rejected) == reference(weights, randoms)  # the script computes what the port does
    drawn = sum(counts)
    assert drawn + rejected == DRAWS and rejected <= 2
    total = sum(weights)
    stat, p = chi_square_p(counts, [drawn * w / total for w in weights])
    assert p > 0.01, (name, counts, stat, p)


async def test_rejection_is_exactly_at_the_largest_multiple_of_the_total(redis):
    # 2^48 = 3 * 93824992236885 + 1: only the very last value is rejected for a total of 3
    # (2^48 - 2 is 2 modulo 3: the third prize).
    assert await sample_batch(redis, [1, 1, 1], [TWO48 - 2, TWO48 - 1, 0, 1, 2]) == ([1, 1, 2], 1)
    total = 1_000_000_000
    limit = total * (TWO48 // total)
    values = [limit - 1, limit, TWO48 - 1, 0, total - 1, total]
    assert await sample_batch(redis, [1, total - 1], values) == reference([1, total - 1], values)
    assert (await sample_batch(redis, [1, total - 1], [limit - 1]))[0] == [0, 1]
    assert (await sample_batch(redis, [1, total - 1], [limit]))[1] == 1
    # A weight of 0 is never drawn: its interval is empty.
    assert (await sample_batch(redis, [0, 1, 0], stream("zero", 1000)))[0] == [0, 1000, 0]


def test_the_chi_square_check_catches_an_off_by_one_sampler():
    # CRMEB's rand(0, total) inclusive: u in [0, total], so the first prize also gets
    # u == total's draw (here folded onto the first cell).
    weights = [1, 1, 1, 1]
    total = sum(weights)
    randoms = stream("biased", DRAWS)
    counts = [0] * len(weights)
    for r in randoms:
        u = r % (total + 1)
        counts[0 if u == total else u] += 1
    _, p = chi_square_p(counts, [DRAWS * w / total for w in weights])
    assert p < 1e-6


def test_the_p_value_matches_known_quantiles():
    # chi-square critical values: df 1 at p 0.05 is 3.841, df 10 at p 0.01 is 23.209.
    assert upper_gamma_q(0.5, 3.841459 / 2) == pytest.approx(0.05, abs=1e-6)
    assert upper_gamma_q(5, 23.20925 / 2) == pytest.approx(0.01, abs=1e-6)
    assert upper_gamma_q(2, 0.5) == pytest.approx(0.9097959895689501, abs=1e-12)
