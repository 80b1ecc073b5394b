"""nla_meta.yaml: released and older spellings, disagreements, and garbled files."""

from pathlib import Path

import pytest
import yaml

from nla.errors import CheckpointError
from nla.sidecar import NLAMeta, meta_from_sidecars, read_sidecar, sidecar_dict, write_sidecar

META = NLAMeta(
    layer=20, d_model=3584, injection_scale=150.0, mse_scale=59.87, injection_char="㈎",
    injection_token_id=149705, left_neighbor_id=29, right_neighbor_id=522,
    critic_suffix_ids=(1318, 29, 366, 1708, 29), av_template="<concept>{injection_char}</concept>",
    ar_template="Summary: <text>{explanation}</text> <summary>", stage="rl",
)  # fmt: skip


def _pair(tmp_path: Path, av: dict, ar: dict) -> NLAMeta:
    write_sidecar(tmp_path / "av.yaml", av)
    write_sidecar(tmp_path / "ar.yaml", ar)
    return meta_from_sidecars(
        read_sidecar(tmp_path / "av.yaml"), read_sidecar(tmp_path / "ar.yaml"),
        tmp_path / "av.yaml", tmp_path / "ar.yaml",
    )  # fmt: skip


def test_round_trip(tmp_path: Path) -> None:
    assert _pair(tmp_path, sidecar_dict(META, "av"), sidecar_dict(META, "ar")) == META


@pytest.mark.parametrize(
    "layer_field",
    [{"critic": {"extraction_layer_index": 20}}, {"ar": {"num_hidden_layers": 20}},
     {"critic": {"num_hidden_layers": 20}}, {"extraction_layer_index": 20}],
)  # fmt: skip
def test_older_spellings(tmp_path: Path, layer_field: dict) -> None:
    av, ar = sidecar_dict(META, "av"), sidecar_dict(META, "ar")
    av["role"], ar["role"] = "actor", "critic"
    for side in (av, ar):
        side["prompt_templates"] = {"actor": META.av_template, "critic": META.ar_template}
        del side["extraction_layer_index"]
    ar.update(layer_field)
    assert _pair(tmp_path, av, ar) == META


def test_sqrt_d_model_scale(tmp_path: Path) -> None:
    av = sidecar_dict(META, "av")
    av["extraction"]["injection_scale"] = "sqrt_d_model"
    assert _pair(tmp_path, av, sidecar_dict(META, "ar")).injection_scale == pytest.approx(3584**0.5)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda av, ar: ar.update(extraction_layer_index=21), "different extraction layers"),
        (lambda av, ar: [d.pop("extraction_layer_index") for d in (av, ar)], "missing the extraction layer"),
        (lambda av, ar: av["tokens"].pop("injection_token_id"), "missing field tokens.injection_token_id"),
        (lambda av, ar: av["tokens"].update(injection_token_id="x"), "must be int"),
        (lambda av, ar: ar.update(d_model=4096), "d_model 4096 differs"),
        (lambda av, ar: av["extraction"].update(injection_scale=-1), "injection_scale must be a positive"),
        (lambda av, ar: av.pop("prompt_templates"), "prompt_templates.av"),
    ],
)
def test_bad_sidecars(tmp_path: Path, mutate, message: str) -> None:
    av, ar = sidecar_dict(META, "av"), sidecar_dict(META, "ar")
    mutate(av, ar)
    with pytest.raises(CheckpointError, match=message):
        _pair(tmp_path, av, ar)


def test_garbled_and_foreign_files(tmp_path: Path) -> None:
    bad = tmp_path / "nla_meta.yaml"
    bad.write_text("kind: nla_model\nrole: [unclosed\n")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        read_sidecar(bad)
    bad.write_text(yaml.safe_dump({"kind": "nla_dataset"}))
    with pytest.raises(CheckpointError, match="kind must be 'nla_model'"):
        read_sidecar(bad)
    with pytest.raises(CheckpointError, match="is missing"):
        read_sidecar(tmp_path / "absent.yaml")
