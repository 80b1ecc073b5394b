"""The ``default`` checkpoint alias: the bundled trained NLA for the embedded SmolLM2 at layer 20,
the untrained ``init`` NLA for everything else."""

from __future__ import annotations

from pathlib import Path

import yaml

from nla.checkpoint.bundled import BUNDLED, bundled_dir, resolve_default
from nla.resolve import DEFAULT_TARGET


def test_other_targets_and_layers_fall_back_to_init() -> None:
    assert resolve_default("/models/tiny", None) == "init"
    assert resolve_default("/models/tiny", 3) == "init:3"
    assert resolve_default(DEFAULT_TARGET, 10) == "init:10"


def test_the_bundled_smollm2_nla_ships_compact_with_its_card() -> None:
    path = Path(resolve_default(DEFAULT_TARGET, None))
    assert path == bundled_dir(BUNDLED[(DEFAULT_TARGET, 20)]) == Path(resolve_default(DEFAULT_TARGET, 20))
    sizes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert sizes < 40e6, f"the bundled NLA should stay compact, it is {sizes / 1e6:.1f} MB"
    for role in ("av", "ar"):
        sidecar = yaml.safe_load((path / role / "nla_meta.yaml").read_text())
        assert sidecar["compact"]["base_model"] == DEFAULT_TARGET and sidecar["stage"] in ("sl", "rl")
        assert (path / role / "adapter_model.safetensors").is_file()
    assert "FVE" in (path / "MODEL_CARD.md").read_text()
