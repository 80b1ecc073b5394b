"""``train ar-sft``: the reconstructor learns to map teacher explanations back to activations.

Loss: mse between sqrt(d)-normalised prediction and gold (= 2(1 - cos)), on the AR-SFT split. The
head starts as the identity, so step 0 already reads the truncated backbone's residual stream.
Reported on the held-out eval split: FVE and cos, and the same predictions scored against shuffled
gold vectors (the control an AR that ignores its input would match).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from nla.training.loop import OnStep, TrainingLoop, batch_indices, warmup_lr
from nla.training.models import run_meta, save_halves, trainable_ar
from nla.training.run import RunDir
from nla.training.stage import derangement, normalised_mse, training_baseline, write_stage
from nla.training.tables import read_table

STAGE = "ar_sft"


class ARSFTConfig(BaseModel):
    """Settings of the AR warm start."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    steps: int = Field(default=300, ge=1)
    """Optimizer steps."""
    batch_size: int = Field(default=16, ge=1)
    """Explanations per step."""
    lr: float = Field(default=1e-3, gt=0)
    """Peak learning rate (adapters and value head)."""
    warmup: int = Field(default=20, ge=0)
    """Linear warm-up steps."""
    lora_rank: int = Field(default=16, ge=0)
    """LoRA rank on every linear layer of blocks 0..K; 0 = full fine-tuning (for GPUs)."""
    save_every: int = Field(default=25, ge=1)
    """Checkpoint interval in steps."""
    seed: int = 0
    """Seeds the batch order."""
    device: str = "cpu"
    """Torch device."""


def run_ar_sft(
    run: RunDir, config: ARSFTConfig, *, show_progress: bool = True, on_step: OnStep | None = None
) -> dict:
    """Train (or finish training) the AR warm start; the stage record."""
    settings, meta = run.settings(), run_meta(run)
    frame, vectors = read_table(run.explained("ar_sft"))
    texts, gold = frame["explanation"].tolist(), torch.from_numpy(vectors)
    ar = trainable_ar(run.model_ref(settings), meta, config.lora_rank, config.device, config.seed)
    optimizer = torch.optim.AdamW(
        [p for p in ar.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0
    )
    stage_dir = run.stage(STAGE)
    loop = TrainingLoop(stage_dir, {"ar": ar}, {"ar": optimizer})

    def step(i: int) -> dict[str, float]:
        rows = batch_indices(len(texts), config.batch_size, config.seed, i)
        warmup_lr(optimizer, config.lr, i, config.warmup)
        pred = ar(**ar.encode([texts[r] for r in rows]))
        loss = normalised_mse(pred, gold[rows].to(pred.device)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ar.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return {"loss": float(loss.detach())}

    loop.run(
        config.steps,
        step,
        save_every=config.save_every,
        desc="ar-sft",
        show_progress=show_progress,
        on_step=on_step,
    )
    save_halves(stage_dir, ar=ar)
    metrics = evaluate_ar(run, ar)
    metrics["train_loss_first"], metrics["train_loss_last"] = (
        loop.history[0]["loss"],
        loop.history[-1]["loss"],
    )
    return write_stage(stage_dir, config, metrics, steps=loop.step, seconds=loop.seconds)


@torch.no_grad()
def evaluate_ar(run: RunDir, ar) -> dict[str, float]:
    """Held-out FVE / cos of the AR on teacher explanations, and the shuffled-target control."""
    frame, vectors = read_table(run.explained("eval"))
    gold = torch.from_numpy(vectors)
    pred = ar.reconstruct(frame["explanation"].tolist(), batch_size=16)
    baseline = training_baseline(run)
    mse = normalised_mse(pred, gold)
    shuffled = normalised_mse(pred, gold[derangement(len(gold), 0)])
    cos = 1 - mse / 2
    return {
        "fve_baseline": baseline,
        "eval_rows": len(gold),
        "heldout_fve": float(1 - mse.mean() / baseline),
        "heldout_cos": float(cos.mean()),
        "shuffled_target_fve": float(1 - shuffled.mean() / baseline),
    }
