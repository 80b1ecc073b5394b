"""The logit lens equals a hand computation (final norm, unembedding, log-softmax) and, at the last block,
the model's own next-token distribution."""

import torch

from nla.activations import residual_stream, residual_streams, tokenize_transcript
from nla.logit_lens import lens_logprobs, logit_lens
from nla.pipeline import load_target
from nla.transcript import Message, Transcript
from tests.conftest import TINY_LAYER

CHAT = Transcript((Message("user", "the cat sat on the mat"), Message("assistant", "hello world")), "t")


def test_lens_matches_hand_computation(tiny_dirs, arch):
    target = load_target(str(tiny_dirs[arch]))
    ids = tokenize_transcript(target.tokenizer, CHAT).input_ids
    h = residual_stream(target.model, ids, TINY_LAYER)[3:7]
    with torch.no_grad():
        by_hand = torch.log_softmax(target.model.lm_head(target.model.model.norm(h)).float(), dim=-1)
    readings = logit_lens(target.model, target.tokenizer, h, TINY_LAYER, top_k=5)
    values, indices = by_hand.topk(5, dim=-1)
    assert [r.token_ids for r in readings] == indices.tolist()
    for reading, row in zip(readings, values.tolist(), strict=True):
        assert reading.logprobs == [round(v, 4) for v in row]
        assert reading.tokens == [target.tokenizer.decode([i]) for i in reading.token_ids]
        assert reading.layer == TINY_LAYER


def test_lens_at_last_block_is_the_models_prediction(tiny_dirs, arch):
    target = load_target(str(tiny_dirs[arch]))
    ids = tokenize_transcript(target.tokenizer, CHAT).input_ids
    last = target.model.config.num_hidden_layers - 1
    h = residual_stream(target.model, ids, last)
    with torch.no_grad():
        logits = target.model(input_ids=torch.tensor([ids])).logits[0].float()
    torch.testing.assert_close(
        lens_logprobs(target.model, h), torch.log_softmax(logits, dim=-1), atol=1e-4, rtol=1e-4
    )


def test_several_layers_in_one_pass_equal_one_at_a_time(tiny_dirs):
    target = load_target(str(tiny_dirs["llama"]))
    ids = tokenize_transcript(target.tokenizer, CHAT).input_ids
    both = residual_streams(target.model, ids, [1, TINY_LAYER])
    for layer in (1, TINY_LAYER):
        torch.testing.assert_close(both[layer], residual_stream(target.model, ids, layer))
