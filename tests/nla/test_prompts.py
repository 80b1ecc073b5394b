"""The AV prompt and its injection site: marker choice, neighbour checks, BOS, embedding scale."""

from dataclasses import replace

import pytest
import torch

from nla.errors import CheckpointError
from nla.metrics import normalise
from nla.prompts import build_av_prompt, find_injection_sites
from nla.verbalizer import Verbalizer


def test_one_site_with_recorded_neighbours(tiny_nla, arch) -> None:
    nla = tiny_nla(arch)
    ids = nla.av_prompt.input_ids
    meta = nla.meta
    assert nla.av_tokenizer.encode(meta.injection_char, add_special_tokens=False) == [meta.injection_token_id]
    assert find_injection_sites(
        ids, meta.injection_token_id, meta.left_neighbor_id, meta.right_neighbor_id
    ) == [nla.av_prompt.site]


def test_no_double_bos(tiny_nla) -> None:
    nla = tiny_nla("gemma3")
    bos = nla.av_tokenizer.bos_token_id
    assert nla.av_prompt.input_ids[0] == bos and nla.av_prompt.input_ids.count(bos) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: replace(m, left_neighbor_id=m.left_neighbor_id + 1), "neighbour mismatch"),
        (lambda m: replace(m, right_neighbor_id=m.right_neighbor_id + 1), "neighbour mismatch"),
        (
            lambda m: replace(m, av_template=m.av_template.replace("{injection_char}", "x")),
            "no {injection_char}",
        ),
        (lambda m: replace(m, av_template=m.av_template + " {injection_char}"), "present 2 times"),
        (lambda m: replace(m, injection_token_id=m.injection_token_id - 1), "not the single token"),
        (lambda m: replace(m, injection_char="zq"), "encodes to"),
    ],
)
def test_bad_injection_setups_are_refused(tiny_nla, change, message: str) -> None:
    nla = tiny_nla("llama")
    with pytest.raises(CheckpointError, match=message):
        build_av_prompt(nla.av_tokenizer, change(nla.meta), "av/nla_meta.yaml")


def test_injected_row_replaces_post_scale_embedding(tiny_nla) -> None:
    """Gemma multiplies embeddings by sqrt(d): the other rows carry that scale, the injected row
    is exactly the rescaled vector."""
    nla = tiny_nla("gemma3")
    verbalizer = Verbalizer(
        nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale, prefix_cache=False
    )
    vectors = torch.randn(3, nla.meta.d_model)
    embeds, _ = verbalizer._inputs(vectors)
    site = nla.av_prompt.site
    assert torch.allclose(embeds[:, site], normalise(vectors, nla.meta.injection_scale))
    raw = nla.av.get_input_embeddings().weight[list(nla.av_prompt.input_ids)]
    scale = nla.meta.d_model**0.5
    keep = [p for p in range(len(nla.av_prompt.input_ids)) if p != site]
    assert torch.allclose(embeds[0, keep], raw[keep] * scale, atol=1e-5)
