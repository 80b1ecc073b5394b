"""``train av-sft``: the verbalizer learns to write the teacher's explanation with the vector injected.

Loss: next-token cross-entropy on ``<explanation>\\n...\\n</explanation>`` only (the prompt is
context), on the AV-SFT split. Reported on held-out eval rows: the same loss with the real vectors
and with shuffled ones. The gap is the evidence that the injected vector carries information the AV
uses; without it the AV is a language model of explanations.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from nla.parsing import CLOSE_TAG, OPEN_TAG
from nla.training.injection import response_logprobs
from nla.training.loop import OnStep, TrainingLoop, batch_indices, warmup_lr
from nla.training.models import run_meta, save_halves, trainable_av
from nla.training.run import RunDir
from nla.training.stage import derangement, write_stage
from nla.training.tables import read_table

STAGE = "av_sft"


class AVSFTConfig(BaseModel):
    """Settings of the AV warm start."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    steps: int = Field(default=500, ge=1)
    """Optimizer steps."""
    batch_size: int = Field(default=8, ge=1)
    """Explanations per step."""
    lr: float = Field(default=5e-4, gt=0)
    """Peak learning rate of the adapters."""
    warmup: int = Field(default=20, ge=0)
    """Linear warm-up steps."""
    lora_rank: int = Field(default=16, ge=0)
    """LoRA rank on every linear layer; 0 = full fine-tuning (for GPUs)."""
    max_response_tokens: int = Field(default=96, ge=8)
    """Teacher responses are cut to this many tokens."""
    eval_rows: int = Field(default=64, ge=2)
    """Held-out rows for the real-vs-shuffled loss."""
    save_every: int = Field(default=25, ge=1)
    """Checkpoint interval in steps."""
    seed: int = 0
    """Seeds the batch order."""
    device: str = "cpu"
    """Torch device."""


def wrap(explanation: str) -> str:
    """The AV's target text for an explanation."""
    return f"{OPEN_TAG}\n{explanation}\n{CLOSE_TAG}"


def run_av_sft(
    run: RunDir, config: AVSFTConfig, *, show_progress: bool = True, on_step: OnStep | None = None
) -> dict:
    """Train (or finish training) the AV warm start; the stage record."""
    settings, meta = run.settings(), run_meta(run)
    av, tokenizer, prompt = trainable_av(run.model_ref(settings), meta, config.lora_rank, config.device, config.seed)
    frame, vectors = read_table(run.explained("av_sft"))
    responses = encode_responses(tokenizer, frame["explanation"].tolist(), config.max_response_tokens)
    gold = torch.from_numpy(vectors)
    optimizer = torch.optim.AdamW(
        [p for p in av.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0
    )
    stage_dir = run.stage(STAGE)
    loop = TrainingLoop(stage_dir, {"av": av}, {"av": optimizer})

    def step(i: int) -> dict[str, float]:
        rows = batch_indices(len(responses), config.batch_size, config.seed, i)
        warmup_lr(optimizer, config.lr, i, config.warmup)
        logp, mask = response_logprobs(
            av, prompt, meta.injection_scale, gold[rows], [responses[r] for r in rows]
        )
        loss = -logp.sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(av.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return {"loss": float(loss.detach())}

    loop.run(
        config.steps,
        step,
        save_every=config.save_every,
        desc="av-sft",
        show_progress=show_progress,
        on_step=on_step,
    )
    save_halves(stage_dir, av=av)
    metrics = real_vs_shuffled(run, av, tokenizer, prompt, meta.injection_scale, config)
    metrics["train_loss_first"], metrics["train_loss_last"] = (
        loop.history[0]["loss"],
        loop.history[-1]["loss"],
    )
    return write_stage(stage_dir, config, metrics, steps=loop.step, seconds=loop.seconds)


def encode_responses(tokenizer, explanations: list[str], cap: int) -> list[list[int]]:
    """Token ids of each wrapped explanation, cut to ``cap``."""
    return [tokenizer.encode(wrap(e), add_special_tokens=False)[:cap] for e in explanations]


@torch.no_grad()
def real_vs_shuffled(
    run: RunDir, av, tokenizer, prompt, scale: float, config: AVSFTConfig
) -> dict[str, float]:
    """Held-out response loss (nats per token) with the real vectors and with shuffled ones."""
    frame, vectors = read_table(run.explained("eval"))
    n = min(config.eval_rows, len(frame))
    responses = encode_responses(tokenizer, frame["explanation"].tolist()[:n], config.max_response_tokens)
    gold = torch.from_numpy(vectors[:n])
    losses = {}
    for name, vecs in (("real", gold), ("shuffled", gold[derangement(n, 0)])):
        total, count = 0.0, 0.0
        for start in range(0, n, config.batch_size):
            logp, mask = response_logprobs(
                av,
                prompt,
                scale,
                vecs[start : start + config.batch_size],
                responses[start : start + config.batch_size],
            )
            total, count = total + float(-logp.sum()), count + float(mask.sum())
        losses[name] = total / count
    return {
        "heldout_loss_real": losses["real"],
        "heldout_loss_shuffled": losses["shuffled"],
        "shuffled_minus_real_nats": losses["shuffled"] - losses["real"],
        "eval_rows": n,
    }
