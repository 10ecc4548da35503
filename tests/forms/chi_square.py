"""Pearson's chi-square goodness of fit with its p-value, in plain Python (scipy is not
a dependency): the p-value is the regularized upper incomplete gamma Q(df/2, x/2),
computed by its series below a+1 and its continued fraction above (Numerical Recipes,
6.2), to about 1e-12."""

from __future__ import annotations

import math


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by the series (x < a + 1)."""
    term = total = 1.0 / a
    n = a
    for _ in range(10_000):
        n += 1
        term *= x / n
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by Lentz's continued fraction (x >= a + 1)."""
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
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def upper_gamma_q(a: float, x: float) -> float:
    if x <= 0:
        return 1.0
    if x < a + 1:
        return 1.0 - _lower_series(a, x)
    return _upper_fraction(a, x)


def chi_square_p(observed: list[int], expected: list[float]) -> tuple[float, float]:
    """(statistic, p-value) with len - 1 degrees of freedom. Cells expected below 5 are
    pooled into one (the usual validity rule), so a tiny weight is still counted."""
    cells: list[tuple[int, float]] = []
    small_o, small_e = 0, 0.0
    for o, e in zip(observed, expected, strict=True):
        if e < 5:
            small_o, small_e = small_o + o, small_e + e
        else:
            cells.append((o, e))
    if small_e > 0:
        cells.append((small_o, small_e))
    stat = sum((o - e) ** 2 / e for o, e in cells)
    return stat, upper_gamma_q((len(cells) - 1) / 2, stat / 2)
