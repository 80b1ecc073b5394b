"""The real ``nla-workbench`` command in a subprocess: output files, exit codes, clear errors,
and nothing written on failure."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nla.checkpoint import save_released


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {"NLA_WORKBENCH_CACHE": str(cache), "PATH": "/usr/bin:/bin", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.fixture
def chat(tmp_path: Path) -> Path:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps([
        {"role": "user", "content": "What are you hiding?"},
        {"role": "assistant", "content": "I am an assistant and I help people."},
    ]))  # fmt: skip
    return path


def test_verbalize_writes_rows(tiny_dirs, tiny_init_dirs, chat: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    done = run_cli(
        "nla", "verbalize", "--target", str(tiny_dirs["llama"]), "--checkpoint", str(tiny_init_dirs["llama"]),
        "--transcript", str(chat), "--samples", "2", "--max-new-tokens", "6", "--out", str(out), cache=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = pd.read_parquet(out)
    assert len(rows) == 2 * rows["position"].nunique() and set(rows["role"]) == {"assistant"}
    assert set(rows.columns) >= {"token", "activation_norm", "explanation", "status", "cos", "mse", "fve"}
    assert rows["checkpoint_untrained"].all()
    assert "UNTRAINED NLA" in done.stdout and "pos " in done.stdout
    assert "verbalizing" in done.stderr  # the progress bar


def test_init_checkpoint_with_generated_reply_to_jsonl(tiny_dirs, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    done = run_cli(
        "nla", "verbalize", "--target", str(tiny_dirs["gemma3"]), "--checkpoint", "init:1", "--text", "hello",
        "--reply-tokens", "4", "--max-new-tokens", "4", "--positions", "all", "--out", str(out), cache=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "target reply:" in done.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["layer"] for r in rows} == {1}
    assert {r["role"] for r in rows} >= {"user", "assistant"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--transcript", "missing.json"], "transcript file missing.json does not exist"),
        (["--text", "hi", "--out", "rows.csv"], "use a .jsonl or .parquet file name"),
        (["--text", "hi", "--positions", "3-1"], "outside the transcript"),
        (["--text", "hi", "--target", "embedded:nope"], "unknown embedded model 'embedded:nope'"),
        (["--text", "hi", "--checkpoint", "."], "must contain 'av/' and 'ar/'"),
        ([], "give exactly one of --text or --transcript"),
    ],
)
def test_bad_input_fails_clearly(tiny_dirs, tiny_init_dirs, tmp_path: Path, extra, message) -> None:
    args = ["--target", str(tiny_dirs["llama"]), "--checkpoint", str(tiny_init_dirs["llama"])]
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "nla", "verbalize", *args, *extra, "--reply-tokens", "0"],
        capture_output=True, text=True, cwd=tmp_path, env={"NLA_WORKBENCH_CACHE": str(tmp_path / "c")}, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("rows*"))


def test_wrong_checkpoint_writes_nothing(tiny_nla, tiny_dirs, chat: Path, tmp_path: Path) -> None:
    ckpt = save_released(tiny_nla("llama"), tmp_path / "nla")
    (ckpt / "ar" / "nla_meta.yaml").write_text("kind: nla_model\nrole: ar\nd_model: [\n")
    out = tmp_path / "rows.jsonl"
    done = run_cli(
        "nla", "verbalize", "--target", str(tiny_dirs["llama"]), "--checkpoint", str(ckpt),
        "--transcript", str(chat), "--out", str(out), cache=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "nla_meta.yaml: not valid YAML" in done.stderr
    assert not out.exists()


def test_d_model_mismatch(tiny_nla, tmp_path: Path, chat: Path) -> None:
    from tests.tiny_models import build_llama

    wide = build_llama(tmp_path / "wide", hidden=96)
    ckpt = save_released(tiny_nla("llama"), tmp_path / "nla")
    done = run_cli(
        "nla",
        "verbalize",
        "--target",
        str(wide),
        "--checkpoint",
        str(ckpt),
        "--transcript",
        str(chat),
        cache=tmp_path,
    )
    assert done.returncode == 2 and "expects d_model 64" in done.stderr and "hidden size 96" in done.stderr


def test_init_and_export_commands(tiny_dirs, tmp_path: Path) -> None:
    compact = tmp_path / "compact"
    assert (
        run_cli(
            "nla", "init", str(compact), "--base", str(tiny_dirs["llama"]), "--layer", "1", cache=tmp_path
        ).returncode
        == 0
    )
    released = tmp_path / "released"
    done = run_cli("nla", "export", str(compact), str(released), cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (released / "av" / "model.safetensors").is_file() and (
        released / "ar" / "value_head.safetensors"
    ).is_file()
    again = run_cli("nla", "export", str(compact), str(released), cache=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    measured = run_cli("nla", "baseline", str(released), "--target", str(tiny_dirs["llama"]), cache=tmp_path)
    assert measured.returncode == 0, measured.stderr
    assert (
        "B = " in measured.stdout and "fve_baseline_source" in (released / "ar" / "nla_meta.yaml").read_text()
    )


def test_dashboard_refuses_a_missing_or_outdated_store(tmp_path: Path) -> None:
    missing = run_cli("dashboard", "--db", str(tmp_path / "none.db"), cache=tmp_path)
    assert missing.returncode == 2 and "not initialised" in missing.stderr and "db upgrade" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    unreachable = run_cli("dashboard", "--db", "postgresql://u:secret@127.0.0.1:1/x", cache=tmp_path)
    assert unreachable.returncode == 2 and "secret" not in unreachable.stderr
