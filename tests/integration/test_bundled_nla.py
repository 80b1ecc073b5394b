"""The bundled SmolLM2 layer-20 NLA, loaded through ``default``: it is trained, its explanations
parse, and they carry information about the vector (explanations of the right vector reconstruct
it better than explanations of another vector) on reference text it was not trained on."""

from __future__ import annotations

import pytest
import torch

from nla.checkpoint import load_nla
from nla.metrics import score
from nla.parsing import Status, parse_explanation
from nla.pipeline import load_target
from nla.reference import reference_vectors
from nla.sampling import SamplingParams
from nla.verbalizer import Verbalizer

pytestmark = pytest.mark.integration
SMOL = "embedded:smollm2-135m-instruct"
N_VECTORS = 16


def test_bundled_nla_explanations_carry_the_vector() -> None:
    nla = load_nla("default", target_ref=SMOL)
    assert not nla.untrained and nla.meta.layer == 20 and nla.meta.fve_baseline
    target = load_target(SMOL)
    vectors = reference_vectors(target.model, target.tokenizer, 20)
    gold = vectors[torch.linspace(0, len(vectors) - 1, N_VECTORS).long()]
    verbalizer = Verbalizer(nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale)
    greedy = SamplingParams(temperature=0, max_new_tokens=72)

    def mse(of: torch.Tensor) -> tuple[float, float]:
        parsed = [parse_explanation(g.text, nla.meta.injection_char) for g in verbalizer.generate(of, greedy)]
        pred = nla.ar.reconstruct([p.text for p in parsed])
        ok = sum(p.status is Status.OK for p in parsed) / len(parsed)
        return float(score(pred, gold, nla.meta.mse_scale, None).mse.mean()), ok

    real, ok = mse(gold)
    shuffled, _ = mse(gold.roll(1, dims=0))
    assert ok >= 0.75, f"only {ok:.0%} of the bundled NLA's explanations parse"
    assert real < shuffled - 0.1, (
        f"round-trip mse {real:.3f} is not below the shuffled control {shuffled:.3f}"
    )
