"""Integration tests on the real embedded SmolLM2-135M-Instruct (fetched from its PyPI wheel once
per cache) with its untrained ``init`` NLA at layer 20."""

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from nla.activations import extract_activations, residual_stream, tokenize_transcript
from nla.backends import TransformersBackend
from nla.checkpoint import export_released, load_nla
from nla.checkpoint.init import cached_init_dir
from nla.engine import NLAEngine
from nla.errors import CheckpointError, ModelResolutionError
from nla.parsing import Status
from nla.pipeline import load_target
from nla.resolve import EMBEDDED, _fetch_gguf, ensure_embedded
from nla.sampling import SamplingParams
from nla.transcript import load_transcript
from nla.verbalizer import Verbalizer

pytestmark = pytest.mark.integration
SMOL = "embedded:smollm2-135m-instruct"
SAMPLE = Path(__file__).parents[2] / "audits" / "samples" / "hidden_motive_chat.json"
GREEDY = SamplingParams(temperature=0, max_new_tokens=16)


@pytest.fixture(scope="module")
def target():
    return load_target(SMOL)


@pytest.fixture(scope="module")
def acts(target, smol_nla):
    return extract_activations(target.model, target.tokenizer, load_transcript(SAMPLE), smol_nla.meta.layer)


def test_embedded_model_is_the_pinned_smollm2(target) -> None:
    config = target.model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 30, 576)
    assert (ensure_embedded("smollm2-135m-instruct") / "model.safetensors").is_file()
    start = time.perf_counter()
    load_target(SMOL)  # from the cached safetensors copy
    print(f"second load {time.perf_counter() - start:.2f}s")


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    wrong = replace(EMBEDDED["smollm2-135m-instruct"], sha256="0" * 64)
    with pytest.raises(ModelResolutionError, match="refusing to load it"):
        _fetch_gguf(wrong, tmp_path)


def test_layer_20_is_block_20(target) -> None:
    ids = tokenize_transcript(target.tokenizer, load_transcript(SAMPLE)).input_ids
    captured = {}

    def keep(module, args, out) -> None:
        captured["h"] = out[0] if isinstance(out, tuple) else out

    hook = target.model.model.layers[20].register_forward_hook(keep)
    try:
        with torch.no_grad():
            hidden = target.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    finally:
        hook.remove()
    stream = residual_stream(target.model, ids, 20)
    assert torch.allclose(stream, captured["h"][0], atol=1e-5)
    assert torch.allclose(stream, hidden[21][0], atol=1e-5)
    assert not torch.allclose(stream, hidden[20][0], atol=1e-2)


def test_assistant_tokens_and_norms(acts) -> None:
    assert {t.role for t in acts.tokens} == {"assistant"}
    text = "".join(t.text for t in acts.tokens)
    assert text.strip().startswith("Try a quick chocolate mug cake")
    norms = acts.vectors.norm(dim=1)
    assert 100 < float(norms.median()) < 600  # ordinary tokens at layer 20 sit around 240


def test_prefix_cached_greedy_equals_uncached(smol_nla, acts) -> None:
    vectors = acts.vectors[:4]
    args = (smol_nla.av, smol_nla.av_tokenizer, smol_nla.av_prompt, smol_nla.meta.injection_scale)
    cached = Verbalizer(*args).generate(vectors, GREEDY, batch_size=4)
    uncached = Verbalizer(*args, prefix_cache=False).generate(vectors, GREEDY, batch_size=4)
    assert [g.text for g in cached] == [g.text for g in uncached]
    assert len({g.text for g in cached}) > 1


def test_corrupted_neighbour_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "nla"
    shutil.copytree(cached_init_dir(SMOL, 20), out)
    sidecar = out / "av" / "nla_meta.yaml"
    data = yaml.safe_load(sidecar.read_text())
    data["tokens"]["injection_left_neighbor_id"] += 1
    sidecar.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(CheckpointError, match="neighbour mismatch"):
        load_nla(str(out))


def test_released_export_loads_like_a_release_and_matches(smol_nla, acts, tmp_path: Path) -> None:
    released = export_released(cached_init_dir(SMOL, 20), tmp_path / "released")
    meta = yaml.safe_load((released / "ar" / "nla_meta.yaml").read_text())
    assert (meta["role"], meta["extraction_layer_index"], meta["d_model"]) == ("ar", 20, 576)
    assert json.loads((released / "ar" / "config.json").read_text())["num_hidden_layers"] == 21
    reloaded = load_nla(str(released))
    vectors = acts.vectors[:3]
    for nla in (smol_nla, reloaded):
        nla.outputs = NLAEngine(TransformersBackend(nla)).explain(vectors, GREEDY)
    assert [e.raw for e in smol_nla.outputs] == [e.raw for e in reloaded.outputs]
    explanations = ["A recipe for chocolate cake in a mug.", "Cooking instructions"]
    assert torch.allclose(
        smol_nla.ar.reconstruct(explanations), reloaded.ar.reconstruct(explanations), atol=1e-4
    )


def test_statuses_for_truncated_and_tagless_outputs(smol_nla, acts) -> None:
    engine = NLAEngine(TransformersBackend(smol_nla))
    results = engine.explain(
        acts.vectors[:4], SamplingParams(temperature=1.0, max_new_tokens=6, seed=1), samples=2
    )
    assert len(results) == 8
    assert all(r.finish in {"length", "eos", "stop"} for r in results)
    marker = smol_nla.meta.injection_char
    for r in results:  # each status is what the raw text says, re-derived independently of the engine
        opened = "<explanation>" in r.raw
        closed = opened and "</explanation>" in r.raw.split("<explanation>", 1)[1]
        expected = (
            Status.INJECTION_FAILED if marker in r.raw else
            Status.NO_TAGS if not opened else
            Status.UNCLOSED if not closed else
            Status.EMPTY if not r.raw.split("<explanation>", 1)[1].split("</explanation>", 1)[0].strip() else
            Status.OK
        )  # fmt: skip
        assert r.status == expected, (r.raw, r.status)
        assert r.n_tokens <= 6 and (r.finish != "length" or r.n_tokens == 6), (r.finish, r.n_tokens)
    assert all((r.cos is None) == (r.status is not Status.OK) for r in results)
    assert {r.status for r in results} <= {
        Status.NO_TAGS,
        Status.UNCLOSED,
        Status.EMPTY,
        Status.INJECTION_FAILED,
    }


def test_cli_on_the_bundled_sample(tmp_path: Path) -> None:
    import subprocess
    import sys

    import pandas as pd

    out = tmp_path / "rows.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "nla", "verbalize", "--transcript", str(SAMPLE),
         "--positions", "40-43", "--samples", "2", "--max-new-tokens", "8", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = pd.read_parquet(out)
    assert len(rows) == 8 and sorted(set(rows["position"])) == [40, 41, 42, 43]
    assert (rows["layer"] == 20).all() and not rows["checkpoint_untrained"].any()  # the bundled NLA
    assert rows["activation_norm"].gt(0).all()


def test_demo_campaign_on_the_embedded_model(tmp_path: Path) -> None:
    import subprocess
    import sys

    from audits.campaign_status import campaign_status
    from audits.scenario_library import load_library
    from audits.store import open_store

    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "demo", "--db", str(tmp_path / "demo.db")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with open_store(str(tmp_path / "demo.db")) as store:
        status = campaign_status(store, "starter", load_library())
    assert status.variants == sum(status.transcripts.values()) > 8
    assert status.explained == status.expected_explanations > 0
    assert not status.untrained and [r[1] for r in status.runs] == ["completed"]  # the bundled NLA
    from audits.read_model.leads import leads

    with open_store(str(tmp_path / "demo.db")) as store:  # the organism campaign opens Review on its leads
        organism = campaign_status(store, "taboo-demo", load_library())
        found = leads(store, "taboo-demo")
    assert [r[1] for r in organism.runs] == ["completed"] and organism.explained == organism.expected_explanations
    assert (found.discovery.arm, found.discovery.against) == ("organism", "base-reads-organism")
    assert len(found.open_terms()) > 0, found.discovery.empty_reason
    assert "review term taboo-demo" in done.stdout
