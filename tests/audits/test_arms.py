"""Target arms on tiny real models, on SQLite and PostgreSQL: a base, a fine-tune (base + random LoRA) and
the base reading the fine-tune's transcripts. Each arm's rows are keyed apart, the reading arm holds the
fine-tune's exact text, every selected token has its logit lens, and a re-run adds nothing."""

from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.errors import SpecError
from audits.runner import CampaignRunner
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLALogitLens,
    SQLAMessage,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    blob_to_vector,
    open_store,
    upgrade,
)
from audits.variants import expand_variants
from nla.logit_lens import logit_lens
from nla.pipeline import load_target
from tests.audits.test_runner import SCENARIO, campaign
from tests.conftest import TINY_LAYER
from tests.nla.test_adapters import make_adapter


@pytest.fixture(scope="module")
def lora_dir(tiny_dirs, tmp_path_factory) -> Path:
    return make_adapter(tiny_dirs["llama"], tmp_path_factory.mktemp("arms") / "lora")


def arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir, **overrides) -> dict:
    base = str(tiny_dirs["llama"])
    data = campaign(tiny_dirs, tiny_init_dirs, name="arms", scenarios={"inline": [SCENARIO]}, **overrides)
    data["target"] = {"max_new_tokens": 6}
    data["arms"] = {
        "base": {"model": base},
        "tuned": {"model": base, "adapter": str(lora_dir)},
        "base-reads-tuned": {"model": base, "reads": "tuned"},
    }
    data["tokens"] = {"roles": ["user", "assistant"], "max_per_transcript": 4, "reply_header": True}
    data["logit_lens"] = {"top_k": 5}
    return data


def test_arms_run_apart_and_the_reader_reads(store_url, tiny_dirs, tiny_init_dirs, lora_dir):
    upgrade(store_url)
    spec = campaign_from_dict(arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir), {})
    variants = expand_variants(spec, {})
    assert len(variants) == 9 and {v.arm for v in variants} == {"base", "tuned", "base-reads-tuned"}
    assert spec.control() == "base"
    with open_store(store_url) as store:
        register_campaign(store, spec)
        assert CampaignRunner(store, "arms", {}).run().status == "completed"
        with store.session() as s:
            rows = s.execute(
                select(
                    SQLAVariant.variant_key,
                    SQLAVariant.conditions_json,
                    SQLATranscript.id,
                    SQLATranscript.source,
                ).join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
            ).all()
            by_key = {r.variant_key: r for r in rows}
            assert len(rows) == 9
            texts = {
                r.variant_key: s.scalars(
                    select(SQLAMessage.content)
                    .where(SQLAMessage.transcript_id == r.id)
                    .order_by(SQLAMessage.message_index)
                ).all()
                for r in rows
            }
            for v in variants:
                row = by_key[v.key]
                assert row.conditions_json["arm"] == v.arm
                if v.arm == "base-reads-tuned":
                    assert row.source == "read" and v.reads == v.key.replace(
                        "arm=base-reads-tuned", "arm=tuned"
                    )
                    assert texts[v.key] == texts[v.reads]  # the same text, word for word
                else:
                    assert row.source == "generated"
            # one model per arm, the fine-tune named with its adapter's hash
            refs: dict[str, set[str]] = {}
            for conditions, model_ref in s.execute(
                select(SQLAVariant.conditions_json, SQLAActivation.model_ref)
                .join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
                .join(SQLATokenPosition, SQLATokenPosition.transcript_id == SQLATranscript.id)
                .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
            ).all():
                refs.setdefault(conditions["arm"], set()).add(model_ref)
            assert all(len(r) == 1 for r in refs.values())
            refs = {arm: r.pop() for arm, r in refs.items()}
            base = str(tiny_dirs["llama"])
            assert refs["base"] == refs["base-reads-tuned"] == base
            assert refs["tuned"].startswith(base + "+adapter:") and len(refs["tuned"]) == len(base) + 25
            acts = s.execute(
                select(SQLAVariant.variant_key, SQLATokenPosition.position, SQLAActivation.activation_key,
                       SQLAActivation.vector, SQLAActivation.id)
                .join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
                .join(SQLATokenPosition, SQLATokenPosition.transcript_id == SQLATranscript.id)
                .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
            ).all()  # fmt: skip
            # same text, same positions, different models: different vectors and never a shared key
            tuned = {(r.variant_key, r.position): r for r in acts if "arm=tuned" in r.variant_key}
            read = [r for r in acts if "arm=base-reads-tuned" in r.variant_key]
            assert read and len(read) == len(tuned)
            for r in read:
                twin = tuned[(r.variant_key.replace("arm=base-reads-tuned", "arm=tuned"), r.position)]
                assert r.activation_key != twin.activation_key and r.vector != twin.vector
            keys = {r.activation_key for r in acts}
            explained = set(s.scalars(select(SQLAExplanation.activation_key).distinct()).all())
            assert keys <= explained
            lens = s.execute(
                select(SQLALogitLens.activation_id, SQLALogitLens.layer, SQLALogitLens.token_ids)
            ).all()
            assert {a for a, _, _ in lens} == {r.id for r in acts}
            assert {layer for _, layer, _ in lens} == {TINY_LAYER} and all(len(t) == 5 for _, _, t in lens)
            # the reading arm's lens is the base model's reading of the tuned model's text
            reader = load_target(base)
            sample = read[0]
            vector = torch.from_numpy(blob_to_vector(sample.vector, 64))[None]
            expected = logit_lens(reader.model, reader.tokenizer, vector, TINY_LAYER, 5)[0].token_ids
            assert next(t for a, _, t in lens if a == sample.id) == expected
            counts = [
                s.scalar(select(func.count()).select_from(t))
                for t in (SQLAActivation, SQLAExplanation, SQLALogitLens)
            ]
        assert CampaignRunner(store, "arms", {}).run().new_explanations == 0  # resumes: nothing left to do
        with store.session() as s:
            assert counts == [
                s.scalar(select(func.count()).select_from(t))
                for t in (SQLAActivation, SQLAExplanation, SQLALogitLens)
            ]


def test_reply_header_tokens_are_selected(tiny_dirs, tiny_init_dirs, lora_dir, tmp_path):
    from audits.token_selection import reply_header_positions
    from nla.activations import tokenize_transcript
    from nla.transcript import Message, Transcript

    target = load_target(str(tiny_dirs["llama"]))
    chat = Transcript((Message("user", "hello world"), Message("assistant", "the cat")), "t")
    tokens = tokenize_transcript(target.tokenizer, chat).tokens
    header = reply_header_positions(tokens)
    first_reply = min(t.position for t in tokens if t.role == "assistant" and t.in_content)
    assert header and all(tokens[p].role == "assistant" and not tokens[p].in_content for p in header)
    last_prompt = max(t.position for t in tokens if t.role == "user" and t.in_content)
    assert last_prompt < min(header) and max(header) < first_reply
    assert "assistant" in "".join(tokens[p].text for p in header)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["arms"]["base-reads-tuned"].update(reads="nobody"),
            "reads 'nobody', which is not an arm",
        ),
        (lambda d: d["arms"].pop("tuned") and d["arms"].pop("base-reads-tuned"), "give two or more arms"),
        (lambda d: d["target"].update(model="org/other-model"), "give each arm's model under arms"),
        (lambda d: d.update(control_arm="nobody"), "control_arm 'nobody' is not an arm"),
        (lambda d: d["arms"]["base"].update(model="organism:nobody"), "no organism named 'nobody'"),
        (lambda d: d["arms"]["tuned"].update(reads="base-reads-tuned"), "which itself reads another arm"),
    ],
)
def test_bad_arms_are_refused(tiny_dirs, tiny_init_dirs, lora_dir, change, message):
    data = arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir)
    change(data)
    with pytest.raises(SpecError, match=message):
        campaign_from_dict(data, {})


def test_single_target_specs_keep_their_hash(tiny_dirs, tiny_init_dirs):
    data = campaign(tiny_dirs, tiny_init_dirs)
    dumped = campaign_from_dict(data, {}).model_dump(mode="json")
    assert not {"arms", "control_arm", "logit_lens"} & set(dumped)
    assert "adapter" not in dumped["target"] and "reply_header" not in dumped["tokens"]


def test_the_default_control_arm_is_a_plain_model(tiny_dirs, tiny_init_dirs, lora_dir):
    """Without ``control_arm``: the plain base with its own transcripts; with only a fine-tune and the base
    reading its transcripts, the reading base (never the fine-tune); an explicit choice wins."""
    data = arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir)
    data.pop("control_arm", None)
    assert campaign_from_dict(data, {}).control() == "base"
    data["arms"].pop("base")
    assert campaign_from_dict(data, {}).control() == "base-reads-tuned"
    data["control_arm"] = "tuned"
    assert campaign_from_dict(data, {}).control() == "tuned"


def _stored(store) -> list[tuple]:
    """Every explanation of the store, by campaign, arm text and token, with its vector's exact bytes."""
    from audits.store import SQLACampaign

    with store.session() as s:
        return sorted(
            s.execute(
                select(SQLACampaign.name, SQLAVariant.variant_key, SQLATokenPosition.position,
                       SQLAActivation.vector, SQLAExplanation.sample_index, SQLAExplanation.text)
                .join(SQLAActivation, SQLAActivation.campaign_id == SQLACampaign.id)
                .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
                .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
                .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
                .join(SQLAExplanation, SQLAExplanation.activation_key == SQLAActivation.activation_key)
            ).all()
        )  # fmt: skip


def test_runs_sharing_loaded_models_store_what_fresh_runs_store(tiny_dirs, tiny_init_dirs, lora_dir, tmp_path):
    """``nla-workbench demo``'s two campaigns share one ``LoadedOnce``: a plain campaign on the base, then an
    arms campaign whose fine-tune is the base plus an adapter. Each distinct model loads once, the adapter
    never lands on the base the other campaign (and arm) uses, and the store holds exactly what two fresh
    processes store."""
    from audits.runner import FreshModels, LoadedOnce

    plain = campaign_from_dict(campaign(tiny_dirs, tiny_init_dirs, name="plain", scenarios={"inline": [SCENARIO]}), {})
    arms = campaign_from_dict(arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir), {})

    class Counting(LoadedOnce):
        loads: list[str] = []

        def target(self, ref, *, adapter=None, **opts):
            before = len(self._targets)
            out = super().target(ref, adapter=adapter, **opts)
            self.loads += ["target"] * (len(self._targets) - before)
            return out

    stores, one = {}, Counting()
    for name, source in (("fresh", FreshModels), ("shared", lambda: one)):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        with open_store(url) as store:
            for spec in (plain, arms):
                register_campaign(store, spec)
                assert CampaignRunner(store, spec.name, {}, models=source()).run().status == "completed"
            stores[name] = _stored(store)
    assert Counting.loads == ["target", "target"]  # the base once (both campaigns), the fine-tune once
    assert stores["shared"] == stores["fresh"] and len(stores["fresh"]) > 0
    shared = Counting()
    base, tuned = shared.target(str(tiny_dirs["llama"])), shared.target(str(tiny_dirs["llama"]), adapter=str(lora_dir))
    assert base is shared.target(str(tiny_dirs["llama"])) and tuned.model is not base.model
    nla = shared.nla(str(tiny_init_dirs["llama"]), target_ref=str(tiny_dirs["llama"]), layer=None)
    assert nla is shared.nla(str(tiny_init_dirs["llama"]), target_ref=str(tiny_dirs["llama"]), layer=None)
