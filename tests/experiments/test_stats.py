"""The statistics of the results: known values (chi-square, the Beta chance to win
against a Monte Carlo), CUPED shrinking the variance, the sample-ratio check, and a
simulation of 1,000 A/A experiments peeked at daily."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.experiments import stats


@pytest.mark.parametrize(
    ("x", "dof", "p"),
    [(3.841458820694124, 1, 0.05), (13.815510557964274, 2, 0.001), (20.515005652432873, 5, 0.001),
     (0.5, 3, 0.9188914116546758), (16.26623619623813, 3, 0.001), (18.46682695290317, 4, 0.001),
     (11.070497693516351, 5, 0.05)],
)  # fmt: skip
def test_chi_square_survival_matches_tables(x: float, dof: int, p: float) -> None:
    assert stats.chi2_sf(x, dof) == pytest.approx(p, rel=1e-3)


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((10, 100), (20, 100)), ((3, 50), (2, 50)), ((120, 1000), (140, 1000)), ((6000, 100_000), (6100, 100_000))],
)
def test_chance_to_win_matches_a_monte_carlo(control: tuple[int, int], treatment: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    draws = 400_000
    c = rng.beta(1 + control[0], 1 + control[1] - control[0], draws)
    t = rng.beta(1 + treatment[0], 1 + treatment[1] - treatment[0], draws)
    assert stats.beta_chance_to_beat(control, treatment) == pytest.approx(float((t > c).mean()), abs=0.004)


def _sums(y: np.ndarray, x: np.ndarray | None = None) -> stats.Sums:
    x = np.zeros_like(y) if x is None else x
    return stats.Sums(len(y), float(y.sum()), float((y * y).sum()), float(x.sum()), float((x * x).sum()),
                      float((x * y).sum()))  # fmt: skip


def test_the_welch_interval_and_the_relative_lift() -> None:
    control = stats.Sums(1000, 100, 100)  # 10% of 1000
    treatment = stats.Sums(1000, 130, 130)  # 13%
    c = stats.compare(control, treatment, binary=True, theta=0.0, mean_x_all=0.0)
    se = math.sqrt(0.1 * 0.9 / 999 + 0.13 * 0.87 / 999)  # sample variances (n - 1)
    assert c.difference == pytest.approx(0.03)
    assert c.difference_interval.low == pytest.approx(0.03 - 1.959964 * se, rel=1e-5)
    assert c.p_value == pytest.approx(2 * (1 - stats.normal_cdf(0.03 / se)))
    assert c.relative_lift == pytest.approx(0.3)
    assert c.chance_to_win > 0.97
    # The always-valid interval is wider than the fixed one: the price of peeking.
    width = c.difference_interval.high - c.difference_interval.low
    assert c.sequential_interval.high - c.sequential_interval.low > width


def test_cuped_shrinks_the_variance_by_the_squared_correlation() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    pre = rng.gamma(2.0, 50.0, size=2 * n)
    y = 0.8 * pre + rng.normal(0, 30, size=2 * n)
    y[n:] += 5.0  # the treatment's true effect
    control, treatment = _sums(y[:n], pre[:n]), _sums(y[n:], pre[n:])
    pooled = control + treatment
    theta = stats.cuped_theta(pooled)
    assert theta == pytest.approx(0.8, abs=0.02)
    c = stats.compare(control, treatment, binary=False, theta=theta, mean_x_all=pooled.mean_x)
    rho2 = np.corrcoef(pre, y)[0, 1] ** 2
    assert c.variance_reduction == pytest.approx(rho2, abs=0.03)
    assert c.cuped_interval.low < 5.0 < c.cuped_interval.high
    width = c.difference_interval.high - c.difference_interval.low
    assert c.cuped_interval.high - c.cuped_interval.low < 0.5 * width


def test_srm_is_flagged_on_a_skewed_split_and_not_on_a_fair_one() -> None:
    skewed = stats.srm([5000, 5400], [0.5, 0.5])  # chi2 = 15.4, p = 8.7e-5
    assert skewed.flagged and skewed.p_value == pytest.approx(8.74e-5, rel=0.01)
    assert not stats.srm([5000, 5200], [0.5, 0.5]).flagged  # p = 0.048: suspicious, not flagged
    # An assignment whose arm b loses 8% of its exposures (a card that fails to render,
    # say) is caught among 20,000 customers; the fair split is not, in 200 tries.
    rng = np.random.default_rng(5)
    shares = [0.45, 0.45, 0.10]
    fair = [stats.srm(list(rng.multinomial(20_000, shares)), shares).flagged for _ in range(200)]
    assert sum(fair) <= 2
    counts = list(rng.multinomial(20_000, shares))
    counts[1] = int(counts[1] * 0.92)
    assert stats.srm(counts, shares).flagged


DAYS, PER_DAY, RATE, SIMULATIONS = 30, 100, 0.1, 1_000


def _aa_runs(seed: int) -> tuple[float, float, float]:
    """1,000 A/A experiments (both arms convert at 10%), 100 customers per arm a day for 30
    days, looked at every day. The rates of: the sequential interval ever excluding 0;
    the fixed 95% interval ever excluding 0 (naive peeking); the fixed interval
    excluding 0 at the last day only (no peeking)."""
    rng = np.random.default_rng(seed)
    a = rng.binomial(PER_DAY, RATE, size=(SIMULATIONS, DAYS)).cumsum(axis=1)
    b = rng.binomial(PER_DAY, RATE, size=(SIMULATIONS, DAYS)).cumsum(axis=1)
    sequential = naive = final = 0
    tune = DAYS * PER_DAY / 2  # n_eff at the planned end
    for k in range(SIMULATIONS):
        hit_seq = hit_naive = False
        for day in range(DAYS):
            n = PER_DAY * (day + 1)
            c = stats.compare(
                stats.Sums(n, float(a[k, day]), float(a[k, day])), stats.Sums(n, float(b[k, day]), float(b[k, day])),
                binary=False, theta=0.0, mean_x_all=0.0, tune_n_eff=tune,
            )  # fmt: skip
            hit_seq = hit_seq or c.sequential_significant
            hit_naive = hit_naive or c.difference_interval.excludes_zero()
            if day == DAYS - 1:
                final += c.difference_interval.excludes_zero()
        sequential += hit_seq
        naive += hit_naive
    return sequential / SIMULATIONS, naive / SIMULATIONS, final / SIMULATIONS


def test_a_thousand_aa_experiments_peeked_daily() -> None:
    sequential, naive, final = _aa_runs(seed=20261203)
    print(f"A/A false positives: sequential {sequential:.3f}, daily peeking {naive:.3f}, one look {final:.3f}")
    # Peeking daily at the fixed interval inflates false positives far past 5%...
    assert naive > 0.15
    # ...one look at the end keeps them at 5% +- 1.5%...
    assert 0.035 <= final <= 0.065
    # ...and the always-valid sequence keeps them under 5% + 1.5% however often one looks.
    # It is conservative with 30 looks (Ville's bound is reached only when watching
    # continuously forever): about 1.5% here, see docs/experiments.md#sequential.
    assert sequential <= 0.065
