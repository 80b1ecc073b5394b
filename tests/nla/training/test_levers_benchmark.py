"""``benchmarks/nla_levers.py`` on the tiny run: a lever trains in its own run directory and is scored on
the data run's held-out splits (corpus and audit-style chats), and the table shows what it measured."""

from __future__ import annotations

from benchmarks.nla_levers import lever_run, measure, table
from nla.training.run import RunDir
from nla.training.tables import read_table


def test_a_lever_trains_apart_and_is_scored_on_the_data_runs_held_out_splits(fresh_run: RunDir) -> None:
    result = measure(fresh_run, "baseline", ar_steps=2, av_steps=2, vectors=3, max_new_tokens=6)
    run = lever_run(fresh_run, "baseline")
    assert run.root != fresh_run.root and not fresh_run.stage("ar_sft").exists()  # trained apart
    assert result["scores"]["vectors"] == 3 and result["scores"]["audit"]["split"] == "eval_audit"
    scored, _ = read_table(fresh_run.stage("eval") / "nla-nla-baseline-sft_eval_audit_explanations.parquet")
    assert scored["doc_id"].str.startswith("audit-heldout:").all()
    assert result["train_rows"]["av_sft"] == len(read_table(fresh_run.explained("av_sft"))[0])
    corpus, _ = read_table(fresh_run.stage("eval") / "nla-nla-baseline-sft_explanations.parquet")
    assert len(corpus) == 3
    fve, failed = result["scores"]["round_trip"]["fve"], corpus["status"].ne("ok").mean()
    row = table({"baseline": result}, fresh_run).splitlines()[-1]
    assert row.startswith("| baseline |") and f"{fve:.3f} ± " in row and f"failed {failed:.0%}" in row


def test_the_saved_table_goes_into_a_runs_card(fresh_run: RunDir, monkeypatch, capsys) -> None:
    """``--table --card-run RUN`` writes the printed table to the run's levers file, which its card shows."""
    import json
    import sys

    from benchmarks import nla_levers
    from nla.training.model_card import LEVERS_MD

    result = measure(fresh_run, "baseline", ar_steps=2, av_steps=2, vectors=3, max_new_tokens=6)
    (fresh_run.root / nla_levers.RESULTS).write_text(json.dumps({"baseline": result}, default=str))
    card_run = lever_run(fresh_run, "baseline")
    argv = ["nla_levers.py", "--data", str(fresh_run.root), "--table", "--card-run", str(card_run.root)]
    monkeypatch.setattr(sys, "argv", argv)
    nla_levers.main()
    printed = capsys.readouterr().out.strip()
    written = (card_run.root / LEVERS_MD).read_text()
    assert printed.startswith("| lever |") and written.endswith(printed + "\n")
    assert "trained AR-SFT 2 and AV-SFT 2 steps" in written and "(3 per split" in written  # as measured
    from nla.training.model_card import model_card

    assert printed in model_card(card_run, "sft")
