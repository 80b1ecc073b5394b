"""``train rl``: GRPO on the verbalizer with the reward computed by the live reconstructor.

Each step draws vectors from the RL split, samples a group of explanations per vector, and rewards
each with ``-mse`` (sqrt(d)-normalised, = -2(1 - cos)) from the *current* AR; a missing or unclosed
``<explanation>``, an empty one, or a generation cut by the length cap gets ``FAILED_REWARD``.
Advantages are rewards normalised within each group. The AV loss is the policy-gradient term plus
``kl_coef`` times the k3 estimate of KL to the frozen SFT verbalizer. The AR then takes one supervised
step on the same rollouts (failed ones excluded), so the reward model follows the AV's outputs
instead of being gamed.

Why a compact loop and not TRL's GRPOTrainer: every sample needs its own vector written into the
embedding row at the marker during generation, log-prob and reference passes (the shared-prefix
path of ``nla.training.injection``), and the reward model is itself trained on each rollout batch.
TRL's trainer owns generation and treats rewards as fixed functions, so both would have to be
patched around it; the loop here is ~100 lines with its maths unit-tested.
"""

from __future__ import annotations

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from nla.parsing import Status, parse_explanation
from nla.sampling import SamplingParams
from nla.training.ar_sft import STAGE as AR_SFT
from nla.training.av_sft import STAGE as AV_SFT
from nla.training.injection import response_logprobs
from nla.training.loop import OnStep, TrainingLoop, batch_indices
from nla.training.models import (
    frozen_copy,
    load_ar_half,
    load_av_half,
    run_meta,
    save_halves,
    trainable_ar,
    trainable_av,
)
from nla.training.run import RunDir
from nla.training.stage import normalised_mse, training_baseline, write_stage
from nla.training.tables import read_table, write_table
from nla.verbalizer import Verbalizer

STAGE = "rl"
FAILED_REWARD = -2.0


class RLConfig(BaseModel):
    """Settings of the GRPO stage."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    steps: int = Field(default=30, ge=1)
    """GRPO steps."""
    vectors_per_step: int = Field(default=4, ge=1)
    """Vectors (groups) per step."""
    group_size: int = Field(default=4, ge=2)
    """Explanations sampled per vector."""
    temperature: float = Field(default=1.0, gt=0)
    """Sampling temperature of the rollouts."""
    max_new_tokens: int = Field(default=80, ge=4)
    """Explanation length cap; a generation that reaches it is a failure."""
    av_lr: float = Field(default=1e-4, gt=0)
    """Verbalizer learning rate."""
    ar_lr: float = Field(default=5e-4, gt=0)
    """Reconstructor learning rate (higher than the AV's, as in the reference)."""
    kl_coef: float = Field(default=0.01, ge=0)
    """Weight of the KL-to-SFT loss."""
    lora_rank: int = Field(default=16, ge=0)
    """LoRA rank, 0 = full fine-tuning (must match the SFT stages)."""
    save_every: int = Field(default=5, ge=1)
    """Checkpoint interval in steps."""
    seed: int = 0
    """Seeds the vector order and the sampling."""
    device: str = "cpu"
    """Torch device."""


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(r - mean) / (std + eps)`` within each row (group) of ``[groups, samples]``; std is the
    population std, so a group of equal rewards has zero advantage."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)


def grpo_loss(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy-gradient plus KL loss over ``[B, L]`` token log-probs; each sequence's tokens are
    averaged, then sequences. The ratio ``exp(logp - logp.detach())`` is 1 in value (one update per
    rollout) and gives the gradient ``A * grad logp``. KL uses the k3 estimator
    ``exp(ref - logp) - (ref - logp) - 1`` (non-negative, unbiased for KL(policy || ref))."""
    lengths = mask.sum(dim=1).clamp(min=1)
    ratio = torch.exp(logp - logp.detach())
    policy = (-(ratio * advantages[:, None]) * mask).sum(dim=1) / lengths
    delta = (ref_logp - logp) * mask
    kl = ((torch.exp(delta) - delta - 1) * mask).sum(dim=1) / lengths
    loss = policy.mean() + kl_coef * kl.mean()
    return loss, {"policy_loss": float(policy.mean().detach()), "kl": float(kl.mean().detach())}


def rewards_for(
    texts: list[str], finishes: list[str], injection_char: str, gold: torch.Tensor, ar
) -> tuple[torch.Tensor, list[str]]:
    """Reward per generation from the live AR, ``FAILED_REWARD`` for unusable ones; the parsed texts
    (empty for failures)."""
    parsed = [parse_explanation(t, injection_char) for t in texts]
    usable = [p.status is Status.OK and f == "stop" for p, f in zip(parsed, finishes, strict=True)]
    rewards = torch.full((len(texts),), FAILED_REWARD)
    keep = [i for i, ok in enumerate(usable) if ok]
    if keep:
        pred = ar.reconstruct([parsed[i].text for i in keep], batch_size=16)
        rewards[keep] = -normalised_mse(pred, gold[keep])
    return rewards, [p.text if ok else "" for p, ok in zip(parsed, usable, strict=True)]


def run_rl(
    run: RunDir, config: RLConfig, *, show_progress: bool = True, on_step: OnStep | None = None
) -> dict:
    """GRPO from the SFT checkpoints (or continue it); the stage record."""
    settings, meta = run.settings(), run_meta(run)
    av, tokenizer, prompt = trainable_av(run.model_ref(settings), meta, config.lora_rank, config.device, config.seed)
    load_av_half(av, run.stage(AV_SFT))
    reference = frozen_copy(av)
    ar = trainable_ar(run.model_ref(settings), meta, config.lora_rank, config.device, config.seed)
    load_ar_half(ar, run.stage(AR_SFT))
    _, vectors = read_table(run.split("rl"))
    gold_all = torch.from_numpy(vectors)
    baseline = training_baseline(run)
    av_opt = torch.optim.AdamW(
        [p for p in av.parameters() if p.requires_grad], lr=config.av_lr, weight_decay=0.0
    )
    ar_opt = torch.optim.AdamW(
        [p for p in ar.parameters() if p.requires_grad], lr=config.ar_lr, weight_decay=0.0
    )
    stage_dir = run.stage(STAGE)
    loop = TrainingLoop(stage_dir, {"av": av, "ar": ar}, {"av": av_opt, "ar": ar_opt})
    rollouts: list[dict] = []

    def step(i: int) -> dict[str, float]:
        rows = batch_indices(len(gold_all), config.vectors_per_step, config.seed, i)
        group = config.group_size
        sampling = SamplingParams(
            temperature=config.temperature,
            top_p=1.0,
            max_new_tokens=config.max_new_tokens,
            seed=config.seed * 100_003 + i,
        )
        gens = Verbalizer(av, tokenizer, prompt, meta.injection_scale).generate(
            gold_all[rows], sampling, samples=group, batch_size=len(rows) * group
        )
        gold = gold_all[rows].repeat_interleave(group, dim=0)
        rewards, texts = rewards_for(
            [g.text for g in gens], [g.finish for g in gens], meta.injection_char, gold, ar
        )
        advantages = group_advantages(rewards.view(-1, group)).view(-1)
        token_ids = [list(g.token_ids) or [tokenizer.eos_token_id] for g in gens]
        vecs = gold_all[rows].repeat_interleave(group, dim=0)
        logp, mask = response_logprobs(av, prompt, meta.injection_scale, vecs, token_ids)
        with torch.no_grad():
            ref_logp, _ = response_logprobs(reference, prompt, meta.injection_scale, vecs, token_ids)
        loss, parts = grpo_loss(logp, ref_logp, mask, advantages, config.kl_coef)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(av.parameters(), 1.0)
        av_opt.step()
        av_opt.zero_grad()
        ar_loss = _ar_step(ar, ar_opt, texts, gold)
        ok = rewards > FAILED_REWARD
        rollouts.extend(
            {
                "step": i,
                "row": int(rows[k // group]),
                "sample": k % group,
                "text": g.text,
                "finish": g.finish,
                "reward": float(rewards[k]),
            }
            for k, g in enumerate(gens)
        )
        mse_ok = float(-rewards[ok].mean()) if ok.any() else float("nan")
        return {"reward": float(rewards.mean()), "fve_ok": 1 - mse_ok / baseline, "failed": float((~ok).float().mean()),
                "ar_loss": ar_loss, "length": float(mask.sum(dim=1).mean()), **parts}  # fmt: skip

    loop.run(
        config.steps,
        step,
        save_every=config.save_every,
        desc="rl",
        show_progress=show_progress,
        on_step=on_step,
    )
    save_halves(stage_dir, av=av, ar=ar)
    if rollouts:
        write_table(
            stage_dir / "rollouts" / f"{loop.step:06d}.parquet",
            pd.DataFrame(rollouts),
            None,
            stage="rl_rollouts",
            inputs={"split": str(run.split("rl"))},
        )
    history = loop.history
    metrics = {
        "fve_baseline": baseline,
        "first_steps_reward": _mean([h["reward"] for h in history[:5]]),
        "last_steps_reward": _mean([h["reward"] for h in history[-5:]]),
        "last_steps_failed": _mean([h["failed"] for h in history[-5:]]),
    }
    return write_stage(stage_dir, config, metrics, steps=loop.step, seconds=loop.seconds)


def _ar_step(ar, optimizer: torch.optim.Optimizer, texts: list[str], gold: torch.Tensor) -> float:
    """One supervised AR step on the usable rollouts; nan when there are none."""
    keep = [i for i, t in enumerate(texts) if t]
    if not keep:
        return float("nan")
    pred = ar(**ar.encode([texts[i] for i in keep]))
    loss = normalised_mse(pred, gold[keep].to(pred.device)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ar.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return float(loss.detach())


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")
