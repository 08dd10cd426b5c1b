"""Confidence intervals for the statistics geolip reports, and the three-way verdict they give.

A prediction with a threshold (an accuracy change within 2 pp, a correlation of at least 0.5)
is decided by the interval, not the point estimate: it *holds* when the whole interval is on
the predicted side, *fails* when the whole interval is on the other side, and is
*inconclusive* when the interval straddles the threshold (more data would decide it).
"""

from __future__ import annotations

import math
from typing import Literal

from scipy.stats import norm

Verdict = Literal["holds", "fails", "inconclusive"]
Interval = tuple[float, float]


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval of a binomial proportion ``successes / n``; inside [0, 1], and
    never of zero width (unlike the normal approximation at 0 % or 100 %)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z = _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not rounding error
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def difference_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, level: float = 0.95
) -> Interval:
    """Interval of ``p_b − p_a`` for two independent proportions: Newcombe's hybrid score
    method (his method 10), built from the two Wilson intervals. For the same test items
    scored twice (a paired design) it is conservative."""
    p_a, p_b = successes_a / n_a, successes_b / n_b
    lo_a, hi_a = wilson_interval(successes_a, n_a, level)
    lo_b, hi_b = wilson_interval(successes_b, n_b, level)
    d = p_b - p_a
    lower = d - math.sqrt((p_b - lo_b) ** 2 + (hi_a - p_a) ** 2)
    upper = d + math.sqrt((hi_b - p_b) ** 2 + (p_a - lo_a) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def spearman_interval(rho: float, n: int, level: float = 0.95) -> Interval:
    """Interval of a Spearman correlation from ``n`` pairs: Fisher's z with the Bonett–Wright
    standard error sqrt((1 + rho²/2) / (n − 3))."""
    if n < 4:
        raise ValueError(f"a Spearman interval needs at least 4 pairs, got {n}")
    if not -1 <= rho <= 1:
        raise ValueError(f"a correlation lies in [-1, 1], got {rho}")
    r = max(-0.999999, min(0.999999, rho))
    half = _z(level) * math.sqrt((1 + r * r / 2) / (n - 3))
    centre = math.atanh(r)
    return math.tanh(centre - half), math.tanh(centre + half)


def at_least(interval: Interval, threshold: float) -> Verdict:
    """Verdict on "the quantity is ≥ threshold"."""
    lo, hi = interval
    if lo >= threshold:
        return "holds"
    return "fails" if hi < threshold else "inconclusive"


def within(interval: Interval, bound: float) -> Verdict:
    """Verdict on "|the quantity| ≤ bound"."""
    lo, hi = interval
    if -bound <= lo and hi <= bound:
        return "holds"
    return "fails" if lo > bound or hi < -bound else "inconclusive"


def combine(verdicts: list[Verdict]) -> Verdict:
    """Verdict on "every one holds": fails if any fails, holds if all hold."""
    if "fails" in verdicts:
        return "fails"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"
