"""A tiny training run (datagen + heuristic explanations over the tiny llama), built once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nla.training.datagen import run_datagen
from nla.training.explain import run_explain
from nla.training.run import RunDir, RunSettings
from nla.training.teachers import HeuristicTeacher
from tests.conftest import TINY_LAYER
from tests.tiny_models import CORPUS

STAGE_DIRS = ("ar_sft", "av_sft", "rl", "eval")


def write_corpus(path: Path) -> Path:
    """Prose and chat documents the tiny tokenizer knows the words of."""
    prose = [{"id": f"p{i}", "text": " ".join(CORPUS[i % 7 : i % 7 + 4])} for i in range(10)]
    chats = [{"id": f"c{i}", "messages": [{"role": "user", "content": CORPUS[i % 7]}]} for i in range(6)]
    path.write_text("\n".join(json.dumps(row) for row in prose + chats), encoding="utf-8")
    return path


def tiny_settings(target: Path, corpus: Path) -> RunSettings:
    return RunSettings(
        target=str(target), layer=TINY_LAYER, corpus=str(corpus), positions_per_doc=3, min_position=4,
        max_tokens=320, reply_tokens=8, split_fractions=(0.4, 0.3, 0.15, 0.15), audit_eval_docs=6,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """Datagen and heuristic explanations over the tiny llama (stages not run)."""
    root = tmp_path_factory.mktemp("train")
    run = RunDir(root / "run")
    run_datagen(
        run,
        tiny_settings(tiny_dirs["llama"], write_corpus(root / "corpus.jsonl")),
        chunk_docs=5,
        show_progress=False,
    )
    run_explain(run, HeuristicTeacher(), show_progress=False)
    return run


@pytest.fixture
def fresh_run(tiny_run: RunDir, tmp_path: Path) -> RunDir:
    """A private copy of the tiny run's data, without any training stage."""
    shutil.copytree(tiny_run.root, tmp_path / "run", ignore=shutil.ignore_patterns(*STAGE_DIRS))
    return RunDir(tmp_path / "run")
