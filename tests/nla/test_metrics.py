"""Reconstruction metrics and vector checks."""

import pytest
import torch

from nla.errors import VectorError
from nla.metrics import check_vectors, fve_baseline, normalise, score


def test_mse_is_two_one_minus_cos_on_sqrt_d_scale() -> None:
    torch.manual_seed(0)
    pred, gold = torch.randn(16, 64) * 7, torch.randn(16, 64) * 0.1 + 3
    rec = score(pred, gold, 64**0.5, baseline=0.5)
    assert torch.allclose(rec.mse, 2 * (1 - rec.cos), atol=1e-5)
    assert torch.allclose(rec.fve, 1 - rec.mse / 0.5)


def test_perfect_and_mean_predictions() -> None:
    torch.manual_seed(1)
    gold = torch.randn(200, 32) + 2
    scale = 32**0.5
    b = fve_baseline(gold, scale)
    assert score(gold * 3, gold, scale, b).fve == pytest.approx(torch.ones(200), abs=1e-5)
    mean = normalise(gold, scale).mean(dim=0, keepdim=True).expand_as(gold)
    # Predicting the mean direction leaves FVE near zero (slightly above: normalising the mean helps).
    assert float(score(mean, gold, scale, b).fve.mean()) == pytest.approx(0.0, abs=0.1)
    assert b == pytest.approx(float(((normalise(gold, scale) - normalise(gold, scale).mean(0)) ** 2).mean()))
    assert score(gold, gold, scale, None).fve is None


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (torch.tensor([[1.0, float("nan"), 0.0, 0.0]]), "NaN or inf"),
        (torch.tensor([[1.0, float("inf"), 0.0, 0.0]]), "NaN or inf"),
        (torch.zeros(2, 4), "all zeros"),
        (torch.ones(2, 5), r"shape \[n, 4\]"),
        (torch.ones(4), r"shape \[n, 4\]"),
    ],
)
def test_bad_vectors(vectors: torch.Tensor, message: str) -> None:
    with pytest.raises(VectorError, match=message):
        check_vectors(vectors, 4, "test")
