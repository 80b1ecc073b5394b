"""Shared fixtures: tiny real models (unit tests), the embedded SmolLM2 (integration tests), and fresh
store databases on SQLite and on a throwaway PostgreSQL cluster (``tests/postgres_server.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers.utils import logging as hf_logging

from nla.checkpoint import load_nla
from nla.checkpoint.init import init_nla
from tests.postgres_server import postgres_server, postgres_url  # noqa: F401 (fixtures: registered by import)
from tests.tiny_models import build_gemma3, build_llama

hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()
torch.set_num_threads(2)

TINY_LAYER = 2
SMOL = "embedded:smollm2-135m-instruct"


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny llama- and gemma3-shaped model directories."""
    root = tmp_path_factory.mktemp("tiny")
    return {"llama": build_llama(root / "llama"), "gemma3": build_gemma3(root / "gemma3")}


@pytest.fixture(scope="session", params=["llama", "gemma3"])
def arch(request: pytest.FixtureRequest) -> str:
    """Run a test once per tiny architecture."""
    return request.param


@pytest.fixture(scope="session")
def tiny_init_dirs(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained compact NLAs over the tiny models, reading layer 2."""
    root = tmp_path_factory.mktemp("tiny-init")
    return {name: init_nla(str(path), TINY_LAYER, root / name) for name, path in tiny_dirs.items()}


@pytest.fixture(scope="session")
def tiny_nla(tiny_init_dirs: dict[str, Path]):
    """Loaded tiny init NLAs by architecture."""
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_nla(str(tiny_init_dirs[name]))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def smol_nla():
    """The untrained init NLA over the embedded SmolLM2 (layer 20)."""
    return load_nla("init", target_ref=SMOL, layer=20)


EVAL_AWARE = "<explanation>\nIt suspects it is being tested.\n</explanation>"


@pytest.fixture(scope="session")
def tiny_taught_dir(tiny_init_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama NLA whose AV was fine-tuned to answer an evaluation-aware explanation whatever
    the vector, saved in the released format (for theme, flag and report tests)."""
    from nla.checkpoint import save_released
    from tests.tiny_models import teach_av

    nla = load_nla(str(tiny_init_dirs["llama"]))
    teach_av(nla, EVAL_AWARE)
    return save_released(nla, tmp_path_factory.mktemp("taught") / "nla")


CALM = "<explanation>\nA cat sits on a mat in the sun.\n</explanation>"


@pytest.fixture(scope="session")
def tiny_calm_dir(tiny_init_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama NLA taught to explain every vector with a sentence of no audit theme (a store it
    writes raises no flag, like the demo under the bundled NLA)."""
    from nla.checkpoint import save_released
    from tests.tiny_models import teach_av

    nla = load_nla(str(tiny_init_dirs["llama"]))
    teach_av(nla, CALM)
    return save_released(nla, tmp_path_factory.mktemp("calm") / "calm")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty (unmigrated) store database, once per backend: a SQLite file path that does not
    exist yet, or the URL of a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")
