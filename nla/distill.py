"""Distilled probes: cheap screens that predict what the NLA would say about a token.

Verbalizing every token is what an NLA audit would ideally do and cannot afford. A distilled probe is
trained on a small seeded random sample of tokens that *were* verbalized: the sample's explanations are
labelled (a theme's detectors hit, or a discovered term appears), and a logistic regression on the
tokens' activations learns to predict the label. Every other token is then scored by one dot product,
and only the highest-scoring tokens are verbalized. The probe distils the NLA's own verdicts, so unlike
directions read off the AR in reverse (``nla.triage``) it is trained on exactly what the screen is meant
to keep.

Vectors are scaled to L2 = ``scale`` (the checkpoint's ``mse_scale``, sqrt(d)) first, as everywhere else.
Regularisation is chosen by stratified cross-validation on the sample (scikit-learn's
``LogisticRegressionCV``, balanced class weights, ROC AUC), and the probe's held-out AUROC is the
cross-validated AUROC at the chosen strength: a probe is only as good as that number says.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from nla.metrics import normalise

MIN_POSITIVES = 2
"""A label with fewer positive tokens in the sample cannot be distilled (no held-out positive)."""


@dataclass(frozen=True)
class DistilledProbe:
    """A linear probe on scaled activations predicting one label."""

    name: str
    weight: np.ndarray
    """``[d]`` float64 coefficients on the scaled activation."""
    bias: float
    auroc: float
    """Cross-validated ROC AUC on the sample at the chosen regularisation."""
    n_positive: int
    n_negative: int
    c: float
    """The chosen inverse regularisation strength."""


def fit_probe(
    name: str, vectors: torch.Tensor, labels: np.ndarray, *, scale: float, seed: int = 0
) -> DistilledProbe | None:
    """Fit a probe for one label on the sample (``vectors`` ``[n, d]``, ``labels`` ``[n]`` bools); None when
    the sample has fewer than ``MIN_POSITIVES`` positives or negatives."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos < MIN_POSITIVES or n_neg < MIN_POSITIVES:
        return None
    x = normalise(vectors.float(), scale).numpy().astype(np.float64)
    folds = StratifiedKFold(n_splits=min(5, n_pos, n_neg), shuffle=True, random_state=seed)
    model = LogisticRegressionCV(
        Cs=np.logspace(-3, 2, 8), cv=folds, scoring="roc_auc", class_weight="balanced", max_iter=2000,
        random_state=seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on separable samples; the CV score says enough
        model.fit(x, y)
    scores = next(iter(model.scores_.values()))  # binary: one entry, [folds, Cs]
    best = int(np.argmax(scores.mean(axis=0)))
    return DistilledProbe(
        name, model.coef_[0].copy(), float(model.intercept_[0]), float(scores.mean(axis=0)[best]), n_pos, n_neg,
        float(model.Cs_[best]),
    )  # fmt: skip


def probe_scores(vectors: torch.Tensor, probes: list[DistilledProbe], scale: float) -> torch.Tensor:
    """``[n, n_probes]`` log-odds of every vector under every probe (one matrix product)."""
    x = normalise(vectors.float(), scale).double()
    weights = torch.from_numpy(np.stack([p.weight for p in probes], axis=1))
    bias = torch.tensor([p.bias for p in probes], dtype=torch.float64)
    return (x @ weights + bias).float()
