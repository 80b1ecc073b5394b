"""Training an NLA on a fine-tune (a base model plus a LoRA adapter, as a model organism is shipped): the
activations are the fine-tune's, the corpus text is the base model's, every stage loads the merged
fine-tune, and a run is never continued over another adapter. Tiny random llama, tiny random LoRA."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from nla.activations import residual_stream
from nla.adapters import resolve_adapter
from nla.checkpoint import load_nla
from nla.errors import NLAError
from nla.pipeline import load_target
from nla.training.ar_sft import ARSFTConfig, run_ar_sft
from nla.training.assemble import assemble
from nla.training.av_sft import AVSFTConfig, run_av_sft
from nla.training.corpus import load_corpus
from nla.training.datagen import _doc_tokens, run_datagen
from nla.training.explain import run_explain
from nla.training.model_card import model_card
from nla.training.run import RunDir
from nla.training.tables import read_table
from nla.training.teachers import HeuristicTeacher, LensTeacher
from tests.nla.test_adapters import make_adapter
from tests.nla.training.conftest import tiny_settings, write_corpus


@pytest.fixture(scope="module")
def adapter_run(tiny_dirs, tmp_path_factory) -> tuple[RunDir, Path]:
    """The tiny run's settings and corpus with a random LoRA on the target."""
    root = tmp_path_factory.mktemp("adapter-run")
    lora = make_adapter(tiny_dirs["llama"], root / "lora")
    settings = tiny_settings(tiny_dirs["llama"], write_corpus(root / "corpus.jsonl"))
    run = RunDir(root / "run")
    run_datagen(run, settings.model_copy(update={"adapter": str(lora)}), chunk_docs=5, show_progress=False)
    run_explain(run, HeuristicTeacher(), show_progress=False)
    return run, lora


def test_activations_are_the_fine_tunes_on_the_base_models_text(adapter_run, tiny_run, tiny_dirs) -> None:
    run, lora = adapter_run
    settings = run.settings()
    tuned = load_target(str(tiny_dirs["llama"]), adapter=str(lora))
    docs = {d.doc_id: d for d in load_corpus(settings.corpus, prose_docs=0, chat_docs=0, seed=settings.seed)}
    for split in ("av_sft", "eval"):
        frame, vectors = read_table(run.split(split))
        plain, plain_vectors = read_table(tiny_run.split(split))
        # the same documents, positions and text (chat replies included) as the run on the base model
        cols = ["doc_id", "position", "detokenized_text_truncated"]
        assert len(frame) > 0 and frame[cols].equals(plain[cols])
        assert not torch.allclose(torch.from_numpy(vectors), torch.from_numpy(plain_vectors), atol=1e-3)
        # each prose row's vector is the fine-tune's residual stream at that token
        for i, row in frame[frame["kind"] == "prose"].iterrows():
            ids, _, _ = _doc_tokens(tuned.tokenizer, docs[row["doc_id"]], None, settings)
            stream = residual_stream(tuned.model, ids, settings.layer)[row["position"]]
            torch.testing.assert_close(torch.from_numpy(vectors[i]), stream, rtol=1e-4, atol=1e-5)
    assert (read_table(run.split("av_sft"))[0]["kind"] == "chat").any()


def test_every_stage_loads_the_merged_fine_tune(adapter_run, tiny_dirs, tmp_path) -> None:
    run, lora = adapter_run
    settings = run.settings()
    recorded = yaml.safe_load(run.settings_file.read_text())
    assert recorded["adapter"] == str(lora) and recorded["adapter_digest"] == resolve_adapter(str(lora)).digest
    merged = run.merged_target
    assert (merged / "model.safetensors").is_file() and not list(merged.glob("*.bin"))
    tuned = load_target(str(tiny_dirs["llama"]), adapter=str(lora)).model.state_dict()
    saved = load_file(str(merged / "model.safetensors"))
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, tuned[name])
    assert run.model_ref(settings) == str(merged.resolve())
    init = yaml.safe_load((run.init / "av" / "nla_meta.yaml").read_text())
    assert init["base_checkpoint"] == init["compact"]["base_model"] == str(merged.resolve())
    lens = LensTeacher(run.model_ref(settings), settings.layer)
    assert str(merged.resolve()) in lens.id  # its cache never mixes with the base model's lens answers
    work = RunDir(tmp_path / "run")
    shutil.copytree(run.root, work.root)
    run_ar_sft(work, ARSFTConfig(steps=2, batch_size=4), show_progress=False)
    run_av_sft(work, AVSFTConfig(steps=2, batch_size=4), show_progress=False)
    nla_dir = assemble(work, tmp_path / "nla", "sft")
    for half in ("av", "ar"):
        meta = yaml.safe_load((nla_dir / half / "nla_meta.yaml").read_text())
        assert meta["base_checkpoint"] == meta["compact"]["base_model"] == str(work.merged_target.resolve())
    nla = load_nla(str(nla_dir))
    assert nla.meta.layer == settings.layer
    card = model_card(work, "sft")
    assert f"+ adapter {settings.adapter_digest[:16]}" in card.splitlines()[0]
    assert "the corpus text (chat replies included) is the base model's" in card


def test_a_run_is_not_continued_over_another_fine_tune(adapter_run, tiny_dirs, tmp_path) -> None:
    run, lora = adapter_run
    work = RunDir(tmp_path / "run")
    shutil.copytree(run.root, work.root)
    changed = make_adapter(tiny_dirs["llama"], tmp_path / "lora", seed=1)
    original = lora / "adapter_model.safetensors"
    kept = original.read_bytes()
    try:
        shutil.copy2(changed / "adapter_model.safetensors", original)  # same path, other weights
        with pytest.raises(NLAError, match=r"different settings \(adapter_digest\)"):
            run_datagen(work, work.settings().model_copy(update={"adapter_digest": None}), show_progress=False)
    finally:
        original.write_bytes(kept)
