"""AR SFT, AV SFT, GRPO, eval and export on the tiny llama: losses fall, GRPO maths match hand
computation, failures get the failure reward, interrupted stages resume to the same weights, and the
exported NLA loads through the engine."""

from __future__ import annotations

import math
import re

import pytest
import torch
from safetensors.torch import load_file

from nla.backends.transformers import TransformersBackend
from nla.checkpoint import load_nla
from nla.engine import NLAEngine
from nla.errors import TrainingError
from nla.sampling import SamplingParams
from nla.training.ar_sft import ARSFTConfig, run_ar_sft
from nla.training.av_sft import AVSFTConfig, run_av_sft
from nla.training.evaluate import EvalConfig, run_eval
from nla.training.export import run_export
from nla.training.grpo import FAILED_REWARD, RLConfig, group_advantages, grpo_loss, rewards_for, run_rl
from nla.training.models import run_meta, trainable_ar
from nla.training.run import RunDir
from nla.training.stage import normalised_mse
from nla.training.tables import read_table

FULL_BATCH = 64  # larger than the tiny splits: every step sees the same rows, so the loss must fall


class Interrupt(Exception):
    """Stands in for Ctrl-C in the middle of a stage."""


def _interrupt_at(step: int):
    def hook(i: int) -> None:
        if i == step:
            raise Interrupt

    return hook


def test_ar_sft_loss_falls_and_reports_controls(fresh_run: RunDir) -> None:
    record = run_ar_sft(
        fresh_run, ARSFTConfig(steps=6, batch_size=FULL_BATCH, lr=3e-3, warmup=0), show_progress=False
    )
    metrics = record["metrics"]
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert {"heldout_fve", "heldout_cos", "shuffled_target_fve", "fve_baseline"} <= set(metrics)
    assert record["steps"] == 6 and (fresh_run.stage("ar_sft") / "ar" / "value_head.safetensors").is_file()


def test_av_sft_loss_falls_and_reports_real_vs_shuffled(fresh_run: RunDir) -> None:
    record = run_av_sft(
        fresh_run, AVSFTConfig(steps=6, batch_size=FULL_BATCH, lr=3e-3, warmup=0), show_progress=False
    )
    metrics = record["metrics"]
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert metrics["shuffled_minus_real_nats"] == pytest.approx(
        metrics["heldout_loss_shuffled"] - metrics["heldout_loss_real"]
    )


def test_group_advantages_match_hand_computation() -> None:
    rewards = torch.tensor([[-0.2, -0.6, -2.0, -0.2], [-1.0, -1.0, -1.0, -1.0]])
    mean, std = -0.75, math.sqrt((0.55**2 + 0.15**2 + 1.25**2 + 0.55**2) / 4)
    expected = [(r - mean) / (std + 1e-6) for r in (-0.2, -0.6, -2.0, -0.2)]
    assert group_advantages(rewards)[0].tolist() == pytest.approx(expected)
    assert group_advantages(rewards)[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_grpo_loss_value_gradient_and_kl_match_hand_computation() -> None:
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, parts = grpo_loss(logp, ref, mask, adv, kl_coef=0.1)
    k3 = lambda d: math.exp(d) - d - 1  # noqa: E731
    kl_first = (k3(-0.5) + k3(1.0)) / 2
    assert parts["policy_loss"] == pytest.approx((-2.0 + 1.0) / 2)
    assert parts["kl"] == pytest.approx(kl_first / 2)
    assert float(loss.detach()) == pytest.approx(-0.5 + 0.1 * kl_first / 2)
    loss.backward()
    # d/dlogp: policy -A/(len*B); KL k3 gradient (1 - exp(ref - logp)) / (len*B) * coef
    g = logp.grad
    assert float(g[0, 0]) == pytest.approx(-2.0 / 4 + 0.1 * (1 - math.exp(-0.5)) / 4)
    assert float(g[0, 1]) == pytest.approx(-2.0 / 4 + 0.1 * (1 - math.exp(1.0)) / 4)
    assert float(g[1, 0]) == pytest.approx(1.0 / 2) and float(g[0, 2]) == 0.0


def test_failed_generations_get_the_failure_reward(tiny_run: RunDir) -> None:
    meta = run_meta(tiny_run)
    ar = trainable_ar(tiny_run.settings().target, meta, 4)
    gold = torch.randn(5, meta.d_model)
    texts = ["<explanation>\nthe cat\n</explanation>", "no tags at all", "<explanation>\nnever closed",
             "<explanation>\n\n</explanation>", "<explanation>\nthe cat\n</explanation>"]  # fmt: skip
    rewards, kept = rewards_for(
        texts, ["stop", "eos", "length", "stop", "length"], meta.injection_char, gold, ar
    )
    assert rewards[1:].tolist() == [FAILED_REWARD] * 4
    expected = -normalised_mse(ar.reconstruct(["the cat"]), gold[:1])
    assert float(rewards[0]) == pytest.approx(float(expected), abs=1e-5) and -4.0 <= float(rewards[0]) <= 0.0
    assert kept == ["the cat", "", "", "", ""]


def _trained(run: RunDir, stage: str, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run.stage(stage) / "state" / f"{name}.safetensors"))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_interrupted_ar_sft_resumes_to_the_same_weights(
    fresh_run: RunDir, tiny_run: RunDir, tmp_path
) -> None:
    import shutil

    config = ARSFTConfig(steps=4, batch_size=4, save_every=1, lr=2e-3)
    other = RunDir(tmp_path / "other")
    shutil.copytree(fresh_run.root, other.root)
    run_ar_sft(fresh_run, config, show_progress=False)
    with pytest.raises(Interrupt):
        run_ar_sft(other, config, show_progress=False, on_step=_interrupt_at(1))
    record = run_ar_sft(other, config, show_progress=False)
    assert record["steps"] == 4
    _assert_same(_trained(fresh_run, "ar_sft", "ar"), _trained(other, "ar_sft", "ar"))


def test_rl_eval_export_end_to_end_with_resume(fresh_run: RunDir, tmp_path) -> None:
    import shutil

    run_ar_sft(fresh_run, ARSFTConfig(steps=2, batch_size=4), show_progress=False)
    run_av_sft(fresh_run, AVSFTConfig(steps=2, batch_size=4), show_progress=False)
    other = RunDir(tmp_path / "other")
    shutil.copytree(fresh_run.root, other.root)
    config = RLConfig(steps=3, vectors_per_step=2, group_size=2, max_new_tokens=6, save_every=1)
    record = run_rl(fresh_run, config, show_progress=False)
    assert record["steps"] == 3
    with pytest.raises(Interrupt):
        run_rl(other, config, show_progress=False, on_step=_interrupt_at(1))
    run_rl(other, config, show_progress=False)
    for name in ("av", "ar"):
        _assert_same(_trained(fresh_run, "rl", name), _trained(other, "rl", name))

    results = run_eval(fresh_run, EvalConfig(vectors=4, max_new_tokens=6), show_progress=False)
    assert results["stage"] == "rl" and results["vectors"] == 4
    for control in (
        "round_trip",
        "shuffled_vector_control",
        "empty_explanation_control",
        "predict_mean_control",
        "teacher_text",
    ):
        assert set(results[control]) == {"fve", "cos"}
    frame, _ = read_table(fresh_run.stage("eval") / "rl_explanations.parquet")
    assert len(frame) == 4 and "av_explanation" in frame
    assert (fresh_run.stage("eval") / "rl_examples.md").read_text().count("## ") == 4
    audit = results["audit"]  # the held-out audit-style chats, scored the same way
    assert audit["split"] == "eval_audit" and audit["vectors"] == 4
    audit_rows, _ = read_table(fresh_run.stage("eval") / "rl_eval_audit_explanations.parquet")
    assert audit_rows["doc_id"].str.startswith("audit-heldout:").all()
    for scores in (results, audit):
        recall = scores["content_recall"]
        assert set(recall) == {"round_trip", "shuffled_vector_control", "teacher_text"}
        assert all(0 <= v <= 1 for v in recall.values())
    # the heuristic teacher quotes the source's last words, so it names their content
    assert results["content_recall"]["teacher_text"] >= 0.75

    # scored again as it is, the stage is not re-verbalized; other settings or force score it again
    scored = fresh_run.stage("eval") / "rl_explanations.parquet"
    stamp = scored.stat().st_mtime_ns
    reused = run_eval(fresh_run, EvalConfig(vectors=4, max_new_tokens=6), show_progress=False)
    assert reused["reused"] and scored.stat().st_mtime_ns == stamp
    assert reused["round_trip"] == results["round_trip"] and reused["audit"] == audit
    fewer = run_eval(fresh_run, EvalConfig(vectors=3, max_new_tokens=6), show_progress=False)
    assert "reused" not in fewer and fewer["vectors"] == 3 and len(read_table(scored)[0]) == 3
    forced = run_eval(fresh_run, EvalConfig(vectors=4, max_new_tokens=6), force=True, show_progress=False)
    assert "reused" not in forced and len(read_table(scored)[0]) == 4
    assert forced["round_trip"]["fve"] == pytest.approx(results["round_trip"]["fve"], abs=1e-5)

    # any NLA can be scored on the run's held-out data: its own export gives the stage's numbers
    exported = run_export(fresh_run, tmp_path / "exported-rl")
    again = run_eval(
        fresh_run, EvalConfig(vectors=4, max_new_tokens=6), nla_ref=str(exported), show_progress=False
    )
    assert again["stage"] == "nla-exported-rl"
    for split_scores, own in ((again, results), (again["audit"], audit)):
        assert split_scores["round_trip"]["fve"] == pytest.approx(own["round_trip"]["fve"], abs=1e-4)
        assert split_scores["content_recall"] == own["content_recall"]
    assert (fresh_run.stage("eval") / "nla-exported-rl.json").is_file()

    released = run_export(fresh_run, tmp_path / "released", merge=True)
    card = (released / "MODEL_CARD.md").read_text()
    assert "audit-style held-out: FVE | cos | content recall" in card
    assert card.index("## Held-out examples") < card.index("## Held-out audit-style examples")
    assert len(re.findall(r"^### \d+\. ", card, re.M)) == 8  # four examples from each held-out split
    assert (released / "ar" / "config.json").is_file() and not (
        released / "ar" / "adapter_config.json"
    ).exists()
    nla = load_nla(str(released))
    assert nla.meta.stage == "rl" and nla.meta.fve_baseline is not None
    _, vectors = read_table(fresh_run.split("eval"))
    engine = NLAEngine(TransformersBackend(nla))
    results = engine.explain(torch.from_numpy(vectors[:2]), SamplingParams(max_new_tokens=6))
    assert len(results) == 2
    compact = run_export(fresh_run, tmp_path / "compact", which="sft")
    assert load_nla(str(compact)).meta.stage == "sl"


def test_full_fine_tuning_option_trains_exports_and_loads(fresh_run: RunDir, tmp_path) -> None:
    run_ar_sft(fresh_run, ARSFTConfig(steps=2, batch_size=4, lora_rank=0), show_progress=False)
    run_av_sft(fresh_run, AVSFTConfig(steps=2, batch_size=4, lora_rank=0), show_progress=False)
    config = RLConfig(steps=1, vectors_per_step=2, group_size=2, max_new_tokens=6, lora_rank=0)
    run_rl(fresh_run, config, show_progress=False)
    assert (fresh_run.stage("rl") / "av" / "model.safetensors").is_file()
    nla = load_nla(str(run_export(fresh_run, tmp_path / "full")))
    assert nla.meta.stage == "rl" and not (tmp_path / "full" / "av" / "adapter_config.json").exists()
    with pytest.raises(TrainingError, match="different --lora-rank"):
        run_rl(fresh_run, config.model_copy(update={"lora_rank": 4, "steps": 2}), show_progress=False)
