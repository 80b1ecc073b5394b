"""The ``default`` checkpoint alias: the newest bundled trained NLA for the embedded SmolLM2 at layer
20, the untrained ``init`` NLA for everything else; ``default@vN`` one bundled version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nla.checkpoint import load_nla
from nla.checkpoint.bundled import BUNDLED, bundled_dir, bundled_versions, resolve_default
from nla.errors import CheckpointError
from nla.resolve import DEFAULT_TARGET
from nla.training.model_card import HOW_TO_READ, ComputeRecord, compute_section


def test_other_targets_and_layers_fall_back_to_init() -> None:
    assert resolve_default("/models/tiny", None) == "init"
    assert resolve_default("/models/tiny", 3) == "init:3"
    assert resolve_default(DEFAULT_TARGET, 10) == "init:10"


NAMES = BUNDLED[(DEFAULT_TARGET, 20)]
CARDS = [bundled_dir(name) / "MODEL_CARD.md" for name in NAMES]


def test_default_is_the_newest_bundled_version_and_each_version_stays_loadable_by_name() -> None:
    versions = bundled_versions(DEFAULT_TARGET, None)
    assert versions == {f"v{i}": bundled_dir(n) for i, n in enumerate(NAMES, start=1)}
    assert list(versions) == ["v1", "v2"], "both bundled NLAs ship"
    assert resolve_default(DEFAULT_TARGET, None) == resolve_default(DEFAULT_TARGET, 20) == str(versions["v2"])
    assert resolve_default(DEFAULT_TARGET, 20, "default@v1") == str(versions["v1"])
    assert resolve_default(DEFAULT_TARGET, None, "default@v2") == str(versions["v2"])


@pytest.mark.parametrize(
    ("target", "layer", "ref", "message"),
    [
        (DEFAULT_TARGET, None, "default@v9", "no bundled NLA 'v9' for target 'embedded:smollm2-135m-instruct' "
         "at layer 20; bundled: default@v1, default@v2"),
        (DEFAULT_TARGET, 10, "default@v1", "at layer 10; bundled: none"),
        ("/models/tiny", 3, "default@v1", "no bundled NLA 'v1' for target '/models/tiny' at layer 3"),
    ],
)  # fmt: skip
def test_an_unknown_version_names_what_ships(target, layer, ref, message) -> None:
    with pytest.raises(CheckpointError, match=re.escape(message)):
        resolve_default(target, layer, ref)
    with pytest.raises(CheckpointError, match=re.escape(message)):  # what campaigns and the CLI call
        load_nla(ref, target_ref=target, layer=layer)


@pytest.mark.parametrize("name", NAMES)
def test_each_bundled_smollm2_nla_ships_compact_with_its_card(name: str) -> None:
    path = bundled_dir(name)
    sizes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert sizes < 40e6, f"the bundled NLA should stay compact, it is {sizes / 1e6:.1f} MB"
    assert (path / "MODEL_CARD.md").is_file()
    for role in ("av", "ar"):
        sidecar = yaml.safe_load((path / role / "nla_meta.yaml").read_text())
        assert sidecar["compact"]["base_model"] == DEFAULT_TARGET and sidecar["stage"] in ("sl", "rl")
        assert (path / role / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("path", CARDS, ids=NAMES)
def test_each_bundled_card_is_what_the_generator_writes_from_its_records(path: Path) -> None:
    """Every section of a shipped card in the generator's order; its compute section exactly what
    ``compute_section`` writes for the figures it shows, which agree with the data line and the stages
    table; each evaluation's difference line agrees with its own table: nothing edited by hand. (The
    run directory itself is not shipped.)"""
    card = path.read_text()
    headings = [h for h in re.findall(r"^## (.+)$", card, re.M) if not h.startswith("Levers")]
    assert headings[:6] == [
        "Data", "Stages (settings and wall time)", "Compute (wall time, from the run's records)",
        "Held-out evaluation", "How to read it", "Held-out examples",
    ]  # fmt: skip
    datagen = float(re.search(r"^- datagen wall time: ([\d.]+) s$", card, re.M).group(1))
    stages = re.findall(r"^\| (ar_sft|av_sft|rl) \| (\d+) \| ([\d.]+) \|", card, re.M)
    assert [name for name, _, _ in stages] == ["ar_sft", "av_sft", "rl"]
    section = card.split("## Compute (wall time, from the run's records)", 1)[1].split("\n## ", 1)[0]

    def number(cell: str) -> float | None:
        return None if cell == "not recorded" else float(cell.replace(",", ""))

    records = []
    for stage, seconds, units, median, estimate in re.findall(
        r"^\| ([a-z_ ()]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", section, re.M
    ):
        if stage == "stage":  # the header
            continue
        count, unit = (
            (int(units.split()[0]), units.split()[1].rstrip("s")) if units != "-" else (None, "step")
        )
        if number(estimate) is not None:  # the card rounds the median; units x median is shown unrounded
            assert number(median) == pytest.approx(number(estimate) / count, abs=0.05)
            median = str(number(estimate) / count)
        records.append(ComputeRecord(stage, number(seconds), count, unit, number(median)))
    assert [r.stage for r in records][:4] == ["datagen", "ar_sft", "av_sft", "rl"]
    assert records[0].seconds == pytest.approx(datagen, abs=0.05)
    assert [(r.units, r.seconds) for r in records[1:4]] == [(int(n), float(t)) for _, n, t in stages]
    assert "\n".join(compute_section(records)) + "\n\n## Held-out evaluation" in card
    evals = re.findall(r"^### after (SFT|RL) ", card, re.M)
    assert evals == ["SFT", "RL"]
    for which in evals:  # each evaluation's difference line agrees with its own table
        block = card.split(f"### after {which} ", 1)[1].split("###", 1)[0]
        row = {
            name: cells.split(" | ") for name, cells in re.findall(r"^\| ([^|]+?) \| (.+) \|$", block, re.M)
        }
        trip, shuffled = row["round trip (AV explanation -> AR)"], row["control: shuffled vector into the AV"]
        shown = re.search(r"Round trip minus shuffled-vector control(?: \(FVE\))?: (.+?)\.?$", block, re.M)
        diffs = [float(v) for v in re.findall(r"(-?\d+\.\d+)", shown.group(1))]
        width = len(trip) // len(diffs)  # FVE, cos (and content recall) per split
        for i, diff in enumerate(diffs):
            assert abs(float(trip[i * width]) - float(shuffled[i * width]) - diff) <= 0.0015, (which, i)
    assert HOW_TO_READ[0] in card
