"""The ``default`` checkpoint alias: the bundled trained NLA for the embedded SmolLM2 at layer 20,
the untrained ``init`` NLA for everything else."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from nla.checkpoint.bundled import BUNDLED, bundled_dir, resolve_default
from nla.resolve import DEFAULT_TARGET
from nla.training.model_card import HOW_TO_READ, ComputeRecord, compute_section


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


def test_the_bundled_card_is_what_the_generator_writes_from_its_records() -> None:
    """Every section of the shipped card in the generator's order, and its compute section exactly what
    ``compute_section`` writes for the figures the card records (datagen and stage wall times, steps):
    nothing edited by hand. (The run directory itself is not shipped.)"""
    card = (Path(resolve_default(DEFAULT_TARGET, None)) / "MODEL_CARD.md").read_text()
    headings = re.findall(r"^## (.+)$", card, re.M)
    assert headings[:6] == [
        "Data", "Stages (settings and wall time)", "Compute (wall time, from the run's records)",
        "Held-out evaluation", "How to read it", "Held-out examples",
    ]  # fmt: skip
    datagen = float(re.search(r"^- datagen wall time: ([\d.]+) s$", card, re.M).group(1))
    stages = re.findall(r"^\| (ar_sft|av_sft|rl) \| (\d+) \| ([\d.]+) \|", card, re.M)
    assert [name for name, _, _ in stages] == ["ar_sft", "av_sft", "rl"]
    evals = re.findall(r"^### after (SFT|RL) ", card, re.M)
    records = [
        ComputeRecord("datagen", datagen, None, "chunk"),
        *(ComputeRecord(name, float(seconds), int(steps)) for name, steps, seconds in stages),
        *(ComputeRecord(f"eval ({which.lower()})", None) for which in evals),
    ]
    assert "\n".join(compute_section(records)) + "\n\n## Held-out evaluation" in card
    for which in evals:  # each evaluation's difference line agrees with its own table
        block = card.split(f"### after {which} ", 1)[1].split("###", 1)[0]
        fve = dict(re.findall(r"^\| ([^|]+?) \| (-?[\d.]+) \| [\d.]+ \|$", block, re.M))
        diff = float(re.search(r"Round trip minus shuffled-vector control: (-?[\d.]+) FVE", block).group(1))
        shown = float(fve["round trip (AV explanation -> AR)"]) - float(
            fve["control: shuffled vector into the AV"]
        )
        assert abs(shown - diff) <= 0.0015, (which, shown, diff)
    assert HOW_TO_READ[0] in card
