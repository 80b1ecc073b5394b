"""The model card is generated entirely from the run's records, its compute section included: each stage's
recorded wall time, and units x median unit time where per-unit times were recorded."""

from __future__ import annotations

import math

import pandas as pd

from nla.training.ar_sft import ARSFTConfig, run_ar_sft
from nla.training.model_card import ComputeRecord, compute_records, compute_section, model_card
from nla.training.run import SPLITS, RunDir
from nla.training.stage import read_stage
from nla.training.tables import read_sidecar


def test_the_compute_section_comes_from_the_records(fresh_run: RunDir) -> None:
    run_ar_sft(fresh_run, ARSFTConfig(steps=5, batch_size=4, lr=1e-3, warmup=0), show_progress=False)
    records = {r.stage: r for r in compute_records(fresh_run)}
    inputs = read_sidecar(fresh_run.split(SPLITS[0]))["inputs"]
    datagen = records["datagen"]
    assert datagen.seconds == inputs["datagen_seconds"] and datagen.units == inputs["chunks"] == len(
        inputs["chunk_seconds"]
    )
    assert math.isclose(datagen.median, pd.Series(inputs["chunk_seconds"]).median())
    history = pd.read_parquet(fresh_run.stage("ar_sft") / "state" / "history.parquet")
    ar = records["ar_sft"]
    assert (ar.seconds, ar.units) == (read_stage(fresh_run.stage("ar_sft"))["train_seconds"], 5)
    assert len(history) == 5 and math.isclose(ar.median, history["step_seconds"].median())
    assert math.isclose(history["step_seconds"].sum(), ar.seconds, abs_tol=0.06)  # the steps are the stage
    card = model_card(fresh_run, "sft")
    section = "\n".join(compute_section(list(records.values())))
    assert section in card
    assert f"| ar_sft | {ar.seconds:,.1f} | 5 steps | {ar.median:,.1f} | {5 * ar.median:,.1f} |" in card


def test_a_run_without_per_unit_times_says_so() -> None:
    lines = compute_section([ComputeRecord("datagen", 3177.8, 19, "chunk"), ComputeRecord("eval (rl)", None)])
    assert "| datagen | 3,177.8 | 19 chunks | not recorded | not recorded |" in lines
    assert "Recorded in all: 3,178 s (0.9 h), not counting eval (rl) (no time recorded)." in lines
    assert lines[-1].startswith("Per-unit times were not recorded by this run")


def test_waiting_is_only_claimed_when_the_median_estimate_is_below_the_record() -> None:
    waited = compute_section([ComputeRecord("ar_sft", 100.0, 10, "step", 8.0)])
    assert waited[-1].endswith("80 s (0.0 h). The difference is time the run waited.")
    uneven = compute_section([ComputeRecord("datagen", 547.6, 21, "chunk", 31.5)])
    assert "662 s" in uneven[-1] and "waited" not in uneven[-1]
    assert uneven[-1].endswith("no waiting shows.")


def test_the_card_shows_both_held_out_splits_with_content_recall() -> None:
    from nla.training.model_card import CONTROLS, _split_table

    def results(fve: float, recall: float) -> dict:
        scores = {key: {"fve": fve, "cos": 0.5} for key, _ in CONTROLS}
        recalls = {"round_trip": recall, "shuffled_vector_control": 0.1, "teacher_text": 1.0}
        return {**scores, "vectors": 10, "failed_explanations": 0.1, "round_trip_minus_shuffled_fve": 0.3,
                "content_recall": recalls}  # fmt: skip

    lines = _split_table(results(0.2, 0.6), results(-0.1, 0.4))
    assert "| round trip (AV explanation -> AR) | 0.200 | 0.500 | 0.60 | -0.100 | 0.500 | 0.40 |" in lines
    assert "| control: empty explanation into the AR | 0.200 | 0.500 | - | -0.100 | 0.500 | - |" in lines
    assert (
        lines[-1]
        == "Round trip minus shuffled-vector control (FVE): corpus held-out 0.300, audit-style held-out 0.300."
    )
    assert len(_split_table(results(0.2, 0.6), None)[2].split("|")) == 6  # a run without the audit split


def test_the_card_names_its_teacher_and_shows_the_runs_lever_table(fresh_run: RunDir) -> None:
    from nla.training.model_card import LENS_NOTE, LEVERS_MD

    run_ar_sft(fresh_run, ARSFTConfig(steps=2, batch_size=4, lr=1e-3, warmup=0), show_progress=False)
    card = model_card(fresh_run, "sft")
    assert "- warm-start teacher: `heuristic-v1` (topic words, the last words verbatim" in card
    assert "## Levers" not in card and LENS_NOTE not in card
    (fresh_run.root / LEVERS_MD).write_text("| lever | FVE |\n|---|---|\n| lens-teacher | 0.1 |\n")
    card = model_card(fresh_run, "sft")
    levers = card.split("## Levers (measured one at a time at a reduced budget)\n\n", 1)[1]
    assert levers.startswith("| lever | FVE |\n|---|---|\n| lens-teacher | 0.1 |\n\n## How to read it")
