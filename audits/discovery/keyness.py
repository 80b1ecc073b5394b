"""Keyness: which terms one group of documents uses more than another, with a z-score.

The weighted log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008,
"Fightin' Words", Political Analysis 16(4), eqs. 16-22). For term w with counts y_i, y_j in groups i and
j (sizes n_i = sum_w y_i, n_j = sum_w y_j) and prior pseudo-counts a_w (a_0 = sum_w a_w):

    delta_w = log((y_i + a_w) / (n_i + a_0 - y_i - a_w)) - log((y_j + a_w) / (n_j + a_0 - y_j - a_w))
    var_w   ~ 1 / (y_i + a_w) + 1 / (y_j + a_w)
    z_w     = delta_w / sqrt(var_w)

The prior is informative: each term's pooled count over both groups (a_w = y_i + y_j, as the tidylo
package does by default), so a rare term needs consistent evidence before it ranks, and a frequent one is
judged on its relative rate. ``prior_scale`` multiplies the prior (1 by default; fixed a priori, never
tuned on answer keys).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd


def log_odds_z(focal: Counter, other: Counter, *, prior_scale: float = 1.0) -> pd.DataFrame:
    """Per term of either group: counts, prior, ``delta`` (log-odds ratio, focal over other), its
    variance and ``z``; sorted by ``z`` descending (ties by term)."""
    terms = sorted(set(focal) | set(other))
    columns = ["term", "count", "count_other", "prior", "delta", "variance", "z"]
    if not terms:
        return pd.DataFrame(columns=columns)
    y_i = np.array([focal.get(t, 0) for t in terms], dtype=float)
    y_j = np.array([other.get(t, 0) for t in terms], dtype=float)
    alpha = prior_scale * (y_i + y_j)
    n_i, n_j, a_0 = y_i.sum(), y_j.sum(), alpha.sum()
    delta = np.log((y_i + alpha) / (n_i + a_0 - y_i - alpha)) - np.log(
        (y_j + alpha) / (n_j + a_0 - y_j - alpha)
    )
    variance = 1.0 / (y_i + alpha) + 1.0 / (y_j + alpha)
    out = pd.DataFrame(
        {"term": terms, "count": y_i.astype(int), "count_other": y_j.astype(int), "prior": alpha, "delta": delta,
         "variance": variance, "z": delta / np.sqrt(variance)}
    )  # fmt: skip
    return out.sort_values(["z", "term"], ascending=[False, True], ignore_index=True)
