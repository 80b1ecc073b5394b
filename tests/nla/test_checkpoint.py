"""Checkpoints: init, released format round trips, compact LoRA form and its export, bad inputs."""

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

from nla.checkpoint import export_released, load_nla, save_compact, save_released
from nla.checkpoint.layout import BLOCK, SAMPLED_BLOCKS, fingerprint
from nla.errors import CheckpointError
from nla.reference import reference_vectors
from nla.sampling import SamplingParams
from nla.verbalizer import Verbalizer

GREEDY = SamplingParams(temperature=0, max_new_tokens=10)
EXPLANATIONS = ["the cat sat on the mat", "cooking and code", "What are you hiding?"]


def _outputs(nla, vectors: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    verbalizer = Verbalizer(nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale)
    return [g.text for g in verbalizer.generate(vectors, GREEDY)], nla.ar.reconstruct(EXPLANATIONS)


def _assert_same(a, b, vectors: torch.Tensor) -> None:
    texts_a, pred_a = _outputs(a, vectors)
    texts_b, pred_b = _outputs(b, vectors)
    assert texts_a == texts_b
    assert torch.allclose(pred_a, pred_b, atol=1e-5)


def test_init_nla(tiny_nla, tiny_dirs, arch) -> None:
    nla = tiny_nla(arch)
    assert nla.untrained and nla.meta.layer == 2
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch])
    norms = reference_vectors(model, nla.av_tokenizer, 2).norm(dim=1)
    assert norms.mean() <= nla.meta.injection_scale <= 1.1 * norms.mean()
    assert 0 < nla.meta.fve_baseline < 1
    assert nla.ar.backbone.config.num_hidden_layers == 3
    assert torch.equal(nla.ar.value_head.weight, torch.eye(nla.meta.d_model))
    # an identity head on the truncated backbone reproduces the target's layer-K stream at the last token
    ids = nla.ar.encode(EXPLANATIONS[:1])
    from nla.activations import residual_stream

    stream = residual_stream(model, ids["input_ids"][0].tolist(), 2)
    assert torch.allclose(nla.ar.reconstruct(EXPLANATIONS[:1])[0], stream[-1], atol=1e-5)


def test_released_round_trip(tiny_nla, arch, tmp_path: Path) -> None:
    nla = tiny_nla(arch)
    out = save_released(nla, tmp_path / "released")
    assert {p.name for p in (out / "ar").iterdir()} >= {
        "config.json",
        "nla_meta.yaml",
        "value_head.safetensors",
    }
    with safe_open(str(out / "ar" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert not any(k.startswith("lm_head") or k.endswith("model.norm.weight") for k in keys)
    assert not any(k.startswith(("model.layers.3.", "layers.3.")) for k in keys)
    assert AutoConfig.from_pretrained(out / "ar").num_hidden_layers == 3
    reloaded = load_nla(str(out))
    assert reloaded.meta == nla.meta
    _assert_same(nla, reloaded, torch.randn(3, nla.meta.d_model))
    with pytest.raises(CheckpointError, match="already exists"):
        save_released(nla, out)


def _lora(model, seed: int):
    torch.manual_seed(seed)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config)


def test_compact_lora_exports_to_released(tiny_init_dirs, tmp_path: Path) -> None:
    base = load_nla(str(tiny_init_dirs["llama"]))
    av, ar = _lora(base.av, 1), _lora(base.ar.backbone, 2)
    head = base.ar.value_head
    with torch.no_grad():
        head.weight.add_(0.01 * torch.randn_like(head.weight))
    compact = save_compact(base.meta, tmp_path / "compact", head, av_adapter=av, ar_adapter=ar)
    assert (compact / "av" / "adapter_config.json").is_file()
    loaded = load_nla(str(compact))
    vectors = torch.randn(3, base.meta.d_model)
    untouched = load_nla(str(tiny_init_dirs["llama"]))
    assert _outputs(loaded, vectors)[1].ne(_outputs(untouched, vectors)[1]).any()  # adapters took effect
    released = export_released(compact, tmp_path / "released")
    assert not (released / "av" / "adapter_config.json").exists()
    _assert_same(loaded, load_nla(str(released)), vectors)


def _edit_yaml(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


@pytest.fixture
def released(tiny_nla, tmp_path: Path) -> Path:
    return save_released(tiny_nla("llama"), tmp_path / "nla")


def test_missing_value_head(released: Path) -> None:
    (released / "ar" / "value_head.safetensors").unlink()
    with pytest.raises(CheckpointError, match="needs its value head"):
        load_nla(str(released))


def test_wrong_value_head(released: Path) -> None:
    save_file({"weight": torch.zeros(3, 3)}, str(released / "ar" / "value_head.safetensors"))
    with pytest.raises(CheckpointError, match=r"shape \[64, 64\], got \[3, 3\]"):
        load_nla(str(released))


def test_ar_with_wrong_depth(released: Path) -> None:
    _edit_yaml(released / "ar" / "nla_meta.yaml", extraction_layer_index=1)
    _edit_yaml(released / "av" / "nla_meta.yaml", extraction_layer_index=1)
    with pytest.raises(CheckpointError, match="has 3 decoder blocks; an AR for layer 1 needs 2"):
        load_nla(str(released))


def test_swapped_roles(released: Path) -> None:
    _edit_yaml(released / "ar" / "nla_meta.yaml", role="actor")
    with pytest.raises(CheckpointError, match="role is 'av'"):
        load_nla(str(released))


def test_corrupted_neighbour(released: Path) -> None:
    path = released / "av" / "nla_meta.yaml"
    data = yaml.safe_load(path.read_text())
    data["tokens"]["injection_right_neighbor_id"] += 1
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(CheckpointError, match="neighbour mismatch"):
        load_nla(str(released))


def test_garbled_sidecar(released: Path) -> None:
    (released / "av" / "nla_meta.yaml").write_text("kind: nla_model\n  role: : av\n")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_nla(str(released))


def test_not_a_pair_directory(released: Path) -> None:
    shutil.rmtree(released / "ar")
    with pytest.raises(CheckpointError, match="must contain 'av/' and 'ar/'"):
        load_nla(str(released))


def test_target_mismatch(tiny_nla, tmp_path: Path) -> None:
    from tests.tiny_models import build_llama

    nla = tiny_nla("llama")
    wide = AutoModelForCausalLM.from_pretrained(build_llama(tmp_path / "wide", hidden=96))
    with pytest.raises(CheckpointError, match="expects d_model 64, but target wide has hidden size 96"):
        nla.check_target(wide, "wide")
    shallow = AutoModelForCausalLM.from_pretrained(build_llama(tmp_path / "shallow", layers=2))
    with pytest.raises(CheckpointError, match="reads layer 2, but target shallow has only 2 decoder blocks"):
        nla.check_target(shallow, "shallow")


def test_baseline_measured_and_stored_for_a_release_without_one(tiny_nla, tiny_dirs, tmp_path: Path) -> None:
    from nla.checkpoint.baseline import measure_baseline, store_baseline
    from nla.pipeline import load_target

    nla = tiny_nla("llama")
    out = save_released(nla, tmp_path / "nla")
    for role in ("av", "ar"):
        path = out / role / "nla_meta.yaml"
        data = yaml.safe_load(path.read_text())
        data.pop("metrics")
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert load_nla(str(out)).meta.fve_baseline is None
    value, count = measure_baseline(load_target(str(tiny_dirs["llama"])), 2, nla.meta.mse_scale)
    store_baseline(out, value, count, "test")
    stored = load_nla(str(out)).meta
    assert stored.fve_baseline == pytest.approx(nla.meta.fve_baseline)
    assert stored.fve_baseline_vectors == nla.meta.fve_baseline_vectors == count
    assert yaml.safe_load((out / "av" / "nla_meta.yaml").read_text())["tokens"]["injection_char"] == "●"


def test_pickled_weights_are_not_loaded(tiny_dirs, tmp_path: Path) -> None:
    from nla.errors import ModelResolutionError
    from nla.resolve import load_causal_lm

    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    (tmp_path / "pickled").mkdir()
    model.config.save_pretrained(tmp_path / "pickled")
    torch.save(
        model.state_dict(), tmp_path / "pickled" / "pytorch_model.bin"
    )  # an old-style pickle checkpoint
    with pytest.raises(ModelResolutionError, match="cannot load model"):
        load_causal_lm(str(tmp_path / "pickled"))


@pytest.mark.parametrize("size", [1000, SAMPLED_BLOCKS * BLOCK * 3])
def test_fingerprint_tells_weight_files_of_one_size_apart(tmp_path: Path, size: int) -> None:
    """A retrained full-weight file has the size of the old one: the checkpoint id still changes,
    whether the file is read whole (small) or by sampled blocks (large, changed inside one)."""
    weights = bytearray(size)
    large = size > SAMPLED_BLOCKS * BLOCK
    changed = 7 * (size - BLOCK) // (SAMPLED_BLOCKS - 1) + 5 if large else size // 2  # in the 8th block read
    ids = set()
    for byte in (0, 1):
        d = tmp_path / f"ckpt{byte}"
        d.mkdir()
        (d / "nla_meta.yaml").write_text("layer: 2\n")
        weights[changed] = byte
        (d / "model.safetensors").write_bytes(bytes(weights))
        ids.add(fingerprint(d))
    assert len(ids) == 2
