"""The statistics behind an experiment's results, in plain Python (math, statistics).

Every function works on sufficient statistics (counts and sums), so the database does
the aggregation and this module sees a handful of numbers per arm. Formulas:
docs/experiments.md#method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_N = NormalDist()

#: Below this many successes the chance to win is the exact Beta sum; above, the
#: normal approximation of the two Beta posteriors (both are then within 1e-3).
EXACT_BETA_LIMIT = 5_000


def normal_cdf(x: float) -> float:
    return _N.cdf(x)


def z_for(alpha: float) -> float:
    """The two-sided critical value: 1.96 for alpha 0.05."""
    return _N.inv_cdf(1 - alpha / 2)


# --- chi-square -------------------------------------------------------------------------


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma Q(a, x) (Numerical Recipes: the series
    below a + 1, the continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X chi-square with ``dof`` degrees of freedom."""
    return _gamma_q(dof / 2, x / 2)


@dataclass(frozen=True)
class Srm:
    chi2: float
    p_value: float
    flagged: bool


def srm(observed: list[int], expected_shares: list[float], *, threshold: float = 0.001) -> Srm:
    """Sample-ratio mismatch: Pearson's chi-square of the observed counts against the
    shares the weights promise (shares sum to 1), flagged below ``threshold``."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return Srm(0.0, 1.0, False)
    chi2 = sum((o - total * s) ** 2 / (total * s) for o, s in zip(observed, expected_shares, strict=True) if s > 0)
    p = chi2_sf(chi2, len(observed) - 1)
    return Srm(chi2, p, p < threshold)


# --- Bayesian chance to win ----------------------------------------------------------------


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def beta_chance_to_beat(control: tuple[int, int], treatment: tuple[int, int]) -> float:
    """P(p_t > p_c) for rates with uniform Beta(1, 1) priors, given (successes, trials)
    of each. Exact (Evan Miller's sum over the treatment's alpha) when the treatment has
    few successes, else the normal approximation of both posteriors."""
    a_c, b_c = 1 + control[0], 1 + control[1] - control[0]
    a_t, b_t = 1 + treatment[0], 1 + treatment[1] - treatment[0]
    if a_t <= EXACT_BETA_LIMIT:
        base = _lbeta(a_c, b_c)
        total = 0.0
        for i in range(a_t):
            total += math.exp(_lbeta(a_c + i, b_c + b_t) - math.log(b_t + i) - _lbeta(1 + i, b_t) - base)
        return min(1.0, max(0.0, total))

    def moments(a: float, b: float) -> tuple[float, float]:
        return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))

    m_c, v_c = moments(a_c, b_c)
    m_t, v_t = moments(a_t, b_t)
    return normal_cdf((m_t - m_c) / math.sqrt(v_c + v_t))


# --- means, CUPED and the comparison --------------------------------------------------------


@dataclass(frozen=True)
class Sums:
    """One arm's sufficient statistics: n customers, metric y, pre-period covariate x."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0

    @property
    def mean(self) -> float:
        return self.sum_y / self.n if self.n else 0.0

    @property
    def mean_x(self) -> float:
        return self.sum_x / self.n if self.n else 0.0

    @property
    def var(self) -> float:
        """Sample variance of y (n - 1 denominator)."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.sum_y2 - self.n * self.mean**2) / (self.n - 1))

    @property
    def var_x(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.sum_x2 - self.n * self.mean_x**2) / (self.n - 1))

    @property
    def cov_xy(self) -> float:
        if self.n < 2:
            return 0.0
        return (self.sum_xy - self.n * self.mean * self.mean_x) / (self.n - 1)

    def __add__(self, other: Sums) -> Sums:
        return Sums(
            self.n + other.n, self.sum_y + other.sum_y, self.sum_y2 + other.sum_y2, self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2, self.sum_xy + other.sum_xy,
        )  # fmt: skip


def cuped_theta(pooled: Sums) -> float:
    """theta = cov(x, y) / var(x) over all arms pooled (0 when x does not vary)."""
    var_x = pooled.var_x
    return pooled.cov_xy / var_x if var_x > 0 else 0.0


def cuped(arm: Sums, theta: float, mean_x_all: float) -> tuple[float, float]:
    """The CUPED-adjusted mean and variance of one arm: y - theta (x - mean of x over
    all arms), whose variance is var(y) + theta^2 var(x) - 2 theta cov(x, y)."""
    mean = arm.mean - theta * (arm.mean_x - mean_x_all)
    var = max(0.0, arm.var + theta**2 * arm.var_x - 2 * theta * arm.cov_xy)
    return mean, var


def cs_radius(*, var_diff: float, n_eff: float, tune_n_eff: float, alpha: float) -> float:
    """Half-width of the always-valid confidence sequence for a difference of means
    (two-sided normal mixture of Howard et al. 2021, eq. 14, with a plug-in variance):

        S = diff * n_eff / sigma,   |S| < sqrt((n_eff + rho) (log((n_eff + rho) / rho) + 2 log(1/alpha)))

    where n_eff = 1 / (1/n_c + 1/n_t), sigma^2 = var_diff * n_eff, and the mixture is
    tuned to be tightest at ``tune_n_eff``: rho = tune_n_eff / (2 log(1/alpha) +
    log(1 + 2 log(1/alpha))). Ville's inequality makes the chance that the sequence ever
    excludes the true difference, at any number of looks, at most alpha."""
    if n_eff <= 0 or var_diff <= 0:
        return math.inf if n_eff <= 0 else 0.0
    log_a = math.log(1 / alpha)
    rho = max(tune_n_eff, 1.0) / (2 * log_a + math.log(1 + 2 * log_a))
    sigma = math.sqrt(var_diff * n_eff)
    return sigma / n_eff * math.sqrt((n_eff + rho) * (math.log((n_eff + rho) / rho) + 2 * log_a))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Comparison:
    """A treatment arm against the control on one metric."""

    control_mean: float
    treatment_mean: float
    difference: float
    difference_interval: Interval
    relative_lift: float | None
    relative_lift_interval: Interval | None
    p_value: float
    chance_to_win: float
    cuped_difference: float
    cuped_interval: Interval
    variance_reduction: float
    sequential_interval: Interval
    sequential_significant: bool


def compare(
    control: Sums, treatment: Sums, *, binary: bool, theta: float, mean_x_all: float, alpha: float = 0.05,
    tune_n_eff: float = 5_000,
) -> Comparison:  # fmt: skip
    """Treatment against control: the difference of means with its Welch z interval and
    p-value, the relative lift with its delta-method interval, the chance to win
    (Beta-binomial for a rate, normal for an amount), the CUPED difference and the
    always-valid sequential interval. Precondition: both arms have n >= 2."""
    z = z_for(alpha)
    m_c, m_t = control.mean, treatment.mean
    v_c, v_t = control.var / control.n, treatment.var / treatment.n
    diff = m_t - m_c
    se = math.sqrt(v_c + v_t)
    p_value = 2 * (1 - normal_cdf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    rel: float | None = None
    rel_interval: Interval | None = None
    if m_c > 0:
        rel = diff / m_c
        rel_se = math.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
        rel_interval = Interval(rel - z * rel_se, rel + z * rel_se)
    if binary:
        chance = beta_chance_to_beat((round(control.sum_y), control.n), (round(treatment.sum_y), treatment.n))
    else:
        chance = normal_cdf(diff / se) if se > 0 else (0.5 if diff == 0 else float(diff > 0))
    adj_c, adj_var_c = cuped(control, theta, mean_x_all)
    adj_t, adj_var_t = cuped(treatment, theta, mean_x_all)
    adj_diff = adj_t - adj_c
    adj_se = math.sqrt(adj_var_c / control.n + adj_var_t / treatment.n)
    reduction = 1 - adj_se**2 / se**2 if se > 0 else 0.0
    n_eff = 1 / (1 / control.n + 1 / treatment.n)
    radius = cs_radius(var_diff=se**2, n_eff=n_eff, tune_n_eff=tune_n_eff, alpha=alpha)
    sequential = Interval(diff - radius, diff + radius)
    return Comparison(
        control_mean=m_c, treatment_mean=m_t, difference=diff,
        difference_interval=Interval(diff - z * se, diff + z * se),
        relative_lift=rel, relative_lift_interval=rel_interval, p_value=p_value, chance_to_win=chance,
        cuped_difference=adj_diff, cuped_interval=Interval(adj_diff - z * adj_se, adj_diff + z * adj_se),
        variance_reduction=reduction, sequential_interval=sequential, sequential_significant=sequential.excludes_zero(),
    )  # fmt: skip
