"""Exported released-format NLAs load the same in transformers 4.x as in 5.x and in the reference
release's code: rotary settings under both spellings, a tokenizer class both versions know, a tokenizer
config that says what the tokenizer does, and templates filled with ``str.format`` as the reference fills
them. transformers 4.x is not installed here, so its reading of ``config.json`` is written out below from
its documented behaviour: ``LlamaConfig``/``Gemma3TextConfig`` take ``rope_theta``, ``rope_scaling`` (and
Gemma 3 ``rope_local_base_freq``) from the file and fall back to class defaults when a key is absent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from nla.checkpoint import load_nla, save_released
from nla.checkpoint.init import init_nla
from nla.checkpoint.portable import legacy_rope
from nla.errors import CheckpointError
from nla.prompts import ar_prompt, ar_suffix_ids, av_user_message, template_fields
from tests.conftest import TINY_LAYER

# transformers 4.5x class defaults, used when config.json lacks the key
V4_DEFAULTS = {
    "llama": {"rope_theta": 10_000.0, "rope_scaling": None},
    "gemma3_text": {"rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0, "rope_scaling": None},
}


def read_as_v4(config: dict) -> dict:
    """The rotary settings transformers 4.x builds from a config.json."""
    text = config.get("text_config") or config
    defaults = V4_DEFAULTS[text["model_type"]]
    return {key: text.get(key, default) for key, default in defaults.items()}


def read_as_v5(directory: Path) -> dict:
    """The same settings as transformers 5 reads them (``rope_parameters``), in 4.x's terms."""
    config = AutoConfig.from_pretrained(directory).get_text_config()
    rope = config.rope_parameters
    if "full_attention" in rope:
        full, local = rope["full_attention"], rope["sliding_attention"]
        return {
            "rope_theta": full["rope_theta"],
            "rope_local_base_freq": local["rope_theta"],
            "rope_scaling": None,
        }
    kind = rope.get("rope_type", "default")
    scaling = {k: v for k, v in rope.items() if k not in ("rope_theta", "rope_type")}
    return {"rope_theta": rope["rope_theta"], "rope_scaling": None if kind == "default" else scaling}


@pytest.fixture(scope="module")
def exported(tiny_dirs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Released exports of init NLAs over: a tiny llama whose rope base is 100,000 (as SmolLM2's, not
    4.x's default), and the tiny Gemma 3 (per-layer-type bases)."""
    root = tmp_path_factory.mktemp("interop")
    llama = shutil.copytree(tiny_dirs["llama"], root / "llama-1e5")
    config = json.loads((llama / "config.json").read_text())
    config["rope_parameters"] = {"rope_theta": 100_000.0, "rope_type": "default"}
    (llama / "config.json").write_text(json.dumps(config))
    out = {}
    for name, model in (("llama", llama), ("gemma3", tiny_dirs["gemma3"])):
        compact = init_nla(str(model), TINY_LAYER, root / f"{name}-init")
        out[name] = save_released(load_nla(str(compact)), root / f"{name}-released")
    return out


@pytest.mark.parametrize("name", ["llama", "gemma3"])
@pytest.mark.parametrize("half", ["av", "ar"])
def test_rope_settings_read_the_same_in_4x_and_5x(exported: dict[str, Path], name: str, half: str) -> None:
    directory = exported[name] / half
    config = json.loads((directory / "config.json").read_text())
    assert read_as_v4(config) == read_as_v5(directory)
    if name == "llama":
        assert read_as_v4(config)["rope_theta"] == 100_000.0  # not 4.x's silent default of 10,000


def test_legacy_rope_carries_scaling() -> None:
    yarn = {"rope_parameters": {"rope_theta": 5e5, "rope_type": "yarn", "factor": 4.0,
                                "original_max_position_embeddings": 8192}}  # fmt: skip
    assert legacy_rope(yarn) == {
        "rope_theta": 5e5,
        "rope_scaling": {
            "rope_type": "yarn",
            "type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    }
    assert legacy_rope({}) == {}


@pytest.mark.parametrize("name", ["llama", "gemma3"])
@pytest.mark.parametrize("half", ["av", "ar"])
def test_exported_tokenizer_is_portable_and_says_what_it_does(
    exported: dict[str, Path], tiny_dirs, name: str, half: str
) -> None:
    directory = exported[name] / half
    assert (
        json.loads((directory / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "PreTrainedTokenizerFast"
    )
    original, saved = AutoTokenizer.from_pretrained(tiny_dirs[name]), AutoTokenizer.from_pretrained(directory)
    for text in ("Summary of the following text: <text>a cat</text> <summary>", "x", "Hello, world!"):
        assert saved(text)["input_ids"] == original(text)["input_ids"]  # tokenisation unchanged
        ids = saved(text)["input_ids"]
        assert saved.bos_token_id is None or ids[0] == saved.bos_token_id  # the reference critic's check
    if name == "llama":  # declares <bos> but never prepends it: the export no longer declares it
        assert original.bos_token_id is not None and saved.bos_token_id is None
    else:  # Gemma prepends its BOS: kept
        assert saved.bos_token_id == original.bos_token_id is not None


def test_templates_are_filled_as_str_format_fills_them() -> None:
    av = 'Reply in JSON like {{"explanation": "..."}}.\n<concept>{injection_char}</concept>'
    assert (
        av_user_message(av, "★")
        == av.format(injection_char="★")
        == 'Reply in JSON like {"explanation": "..."}.\n<concept>★</concept>'
    )
    ar = "Summary {{of}} the following text: <text>{explanation}</text> <summary>"
    assert (
        ar_prompt(ar, "a {braced} word")
        == "Summary {of} the following text: <text>a {braced} word</text> <summary>"
    )
    assert template_fields(av) == ["injection_char"] and template_fields(ar) == ["explanation"]


def test_a_template_with_another_field_is_refused(tiny_nla) -> None:
    from dataclasses import replace

    from nla.prompts import build_av_prompt, check_ar_template

    nla = tiny_nla("llama")
    with pytest.raises(
        CheckpointError, match=r"prompt_templates.av has field\(s\) \['name'\] besides \{injection_char\}"
    ):
        build_av_prompt(
            nla.av_tokenizer,
            replace(nla.meta, av_template="{name}: <concept>{injection_char}</concept>"),
            "x",
        )
    with pytest.raises(CheckpointError, match=r"prompt_templates.ar has no \{explanation\} slot"):
        check_ar_template(nla.ar.tokenizer, replace(nla.meta, ar_template="Summary {{explanation}}"), "x")
    suffix = ar_suffix_ids(nla.ar.tokenizer, "<text>{explanation}</text> {{summary}}")
    assert suffix == tuple(nla.ar.tokenizer.encode("</text> {summary}", add_special_tokens=False)[1:])
