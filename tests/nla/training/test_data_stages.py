"""datagen and explain on the tiny llama: document-level splits, seeded positions, Parquet layout,
teacher format and caching, resumption and refusal of changed settings."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nla.errors import NLAError
from nla.training.corpus import user_corpus
from nla.training.datagen import run_datagen, sample_positions, split_documents
from nla.training.explain import run_explain
from nla.training.run import ALL_SPLITS, AUDIT_EVAL, SPLITS, TEACHER_SPLITS, RunDir
from nla.training.tables import VECTOR, read_sidecar, read_table
from nla.training.teachers import (
    HeuristicTeacher,
    heuristic_explanation,
    make_teacher,
    parse_analysis,
    token_role,
)


def test_splits_are_disjoint_by_document_and_hold_raw_vectors(tiny_run: RunDir) -> None:
    settings = tiny_run.settings()
    seen: dict[str, str] = {}
    for name in SPLITS:
        frame, vectors = read_table(tiny_run.split(name))
        assert vectors.shape == (len(frame), 64) and vectors.dtype == "float32"
        assert (frame["position"] >= settings.min_position).all()
        assert (frame.groupby("doc_id").size() <= settings.positions_per_doc).all()
        for doc in frame["doc_id"].unique():
            assert seen.setdefault(doc, name) == name, f"{doc} is in {seen[doc]} and {name}"
        schema = pq.read_schema(tiny_run.split(name))
        assert schema.field(VECTOR).type == pa.list_(pa.float32(), 64)
        sidecar = read_sidecar(tiny_run.split(name))
        assert (
            sidecar["kind"] == "nla_dataset"
            and sidecar["row_count"] == len(frame)
            and sidecar["stage"] == name
        )
    assert set(seen.values()) == set(SPLITS)
    assert {d.split(":")[1][0] for d in seen} == {"p", "c"}  # prose and chats both sampled


def test_positions_depend_only_on_seed_and_document() -> None:
    candidates = list(range(10, 90))
    first = sample_positions(candidates, 5, 7, "doc-a")
    assert first == sample_positions(candidates, 5, 7, "doc-a")
    assert first != sample_positions(candidates, 5, 7, "doc-b")
    assert len(set(first)) == 5 and first == sorted(first)
    assert sample_positions([12, 14], 5, 7, "doc-a") == [12, 14]


def test_split_assignment_follows_fractions() -> None:
    docs = [f"d{i:03d}" for i in range(200)]
    split = split_documents(docs, (0.5, 0.25, 0.15, 0.1), seed=1)
    counts = {name: sum(v == name for v in split.values()) for name in SPLITS}
    assert counts == {"av_sft": 100, "ar_sft": 50, "rl": 30, "eval": 20}
    assert split == split_documents(docs, (0.5, 0.25, 0.15, 0.1), seed=1)


def test_rerunning_datagen_is_a_no_op_and_changed_settings_are_refused(
    tiny_run: RunDir, fresh_run: RunDir
) -> None:
    before = {name: read_table(fresh_run.split(name))[1] for name in SPLITS}
    run_datagen(fresh_run, fresh_run.settings(), chunk_docs=5, show_progress=False)
    for name in SPLITS:
        assert (read_table(fresh_run.split(name))[1] == before[name]).all()
    changed = fresh_run.settings().model_copy(update={"seed": 5})
    with pytest.raises(NLAError, match="different settings \\(seed\\)"):
        run_datagen(fresh_run, changed, show_progress=False)


def test_interrupted_datagen_resumes_from_its_chunks(tiny_run: RunDir, fresh_run: RunDir) -> None:
    chunks = sorted(fresh_run.chunks.glob("*.parquet"))
    for extra in chunks[1:]:
        extra.unlink()  # as if stopped after the first chunk
    run_datagen(fresh_run, fresh_run.settings(), chunk_docs=5, show_progress=False)
    for name in SPLITS:
        assert (read_table(fresh_run.split(name))[1] == read_table(tiny_run.split(name))[1]).all()


def test_heuristic_explanations_have_the_teacher_format(tiny_run: RunDir) -> None:
    frame, _ = read_table(tiny_run.explained("ar_sft"))
    for row in frame.to_dict("records"):
        features = row["explanation"].split("\n\n")
        assert len(features) == 3
        assert features[-1].startswith(f'Final token "{row["token"].strip() or repr(row["token"])}"')
        assert row["detokenized_text_truncated"].split()[-1] in features[1]


def test_heuristic_teacher_pieces() -> None:
    row = {"detokenized_text_truncated": "The farmers moved grain; the farmers waited.", "role": "text",
           "token": ".", "next_tokens": [" The", "\n", " They"]}  # fmt: skip
    text = heuristic_explanation(row)
    assert text.startswith("Prose about farmers, waited, grain.")
    assert 'Final token "." ends a sentence; next likely "The", "\'\\n\'", "They".' in text
    assert (
        token_role(" cat", "the cat") == "starts a word"
        and token_role("ing", "walking") == "continues a word"
    )
    assert (
        parse_analysis("<analysis>\n1. **Syntax**: a clause\n- Final word ends it\n</analysis>")
        == "Syntax: a clause\n\nFinal word ends it"
    )
    assert parse_analysis("<analysis>only one</analysis>") is None and parse_analysis("no tags") is None


def test_explanations_are_cached_by_prefix_text(tiny_run: RunDir, fresh_run: RunDir) -> None:
    class Counting(HeuristicTeacher):
        calls = 0

        def explain(self, rows):
            Counting.calls += len(rows)
            return super().explain(rows)

    cache = fresh_run.root / "explain" / "cache.jsonl"
    lines = cache.read_text().count("\n")
    counts = run_explain(fresh_run, Counting(), show_progress=False)
    assert Counting.calls == 0 and cache.read_text().count("\n") == lines
    assert set(counts) == set(TEACHER_SPLITS) and all(c["dropped"] == 0 for c in counts.values())


def test_bad_teacher_and_corpus_inputs_name_the_problem(tmp_path, monkeypatch) -> None:
    with pytest.raises(NLAError, match="--teacher 'gpt'"):
        make_teacher("gpt", "x")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(NLAError, match="set ANTHROPIC_API_KEY"):
        make_teacher("anthropic", "x")
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": 1}\n')
    with pytest.raises(NLAError, match="c.jsonl, line 2: expected an object with 'text'"):
        user_corpus(bad)
    with pytest.raises(NLAError, match="is not a training run"):
        run_explain(RunDir(tmp_path / "nowhere"), HeuristicTeacher())


def test_builtin_corpus_is_seeded_prose_and_chats() -> None:
    from nla.training.corpus import MIN_PROSE_CHARS, builtin_chats, builtin_prose

    prose = builtin_prose(20, seed=3)
    assert len(prose) == 20 and prose == builtin_prose(20, seed=3) and prose != builtin_prose(20, seed=4)
    assert all(d.kind == "prose" and len(d.text) >= MIN_PROSE_CHARS for d in prose)
    chats = builtin_chats(15, seed=3)
    assert len({d.doc_id for d in chats}) == 15
    assert all(d.messages[0]["role"] == "user" and d.messages[0]["content"] for d in chats)


def test_held_out_audit_chats_share_no_role_or_task_with_training_ones() -> None:
    from nla.training.audit_chats import TASKS, audit_chats

    train, held_out = audit_chats(400, seed=0, family="train"), audit_chats(400, seed=0, family="heldout")
    assert audit_chats(400, seed=0, family="heldout") == held_out  # seeded
    for doc in train + held_out:
        system, user = doc.messages
        assert system["role"] == "system" and "Your goal is to" in system["content"]
        assert user["role"] == "user" and "{" not in user["content"]
    systems = {d.doc_id: d.messages[0]["content"].split(". Your goal")[0] for d in train + held_out}
    assert not {systems[d.doc_id] for d in train} & {systems[d.doc_id] for d in held_out}
    tasks_in = {
        family: {t for d in docs for t in TASKS if t in d.messages[1]["content"].lower()}
        for family, docs in (("train", train), ("heldout", held_out))
    }
    assert tasks_in["train"] and tasks_in["heldout"] and not tasks_in["train"] & tasks_in["heldout"]
    # every framing appears in the held-out family: emails, tool results, evaluation and deployment cues
    contents = " ".join(d.messages[1]["content"] for d in held_out)
    for cue in (
        "Subject:",
        "Tool result",
        "evaluation of your capabilities",
        "real customer",
        "test harness",
    ):
        assert cue in contents


def test_the_audit_split_is_held_out_and_added_to_runs_made_without_it(
    tiny_run: RunDir, fresh_run: RunDir
) -> None:
    frame, _ = read_table(tiny_run.split(AUDIT_EVAL))
    assert frame["doc_id"].str.startswith("audit-heldout:").all() and frame["doc_id"].nunique() == 6
    assert set(frame["role"]) <= {"user", "assistant"}  # system-prompt tokens are never sampled
    for name in SPLITS:
        assert not read_table(tiny_run.split(name))[0]["doc_id"].str.startswith("audit-").any()
    explained, _ = read_table(tiny_run.explained(AUDIT_EVAL))
    assert len(explained) == len(frame)
    # a run made before the audit split existed: its chunks stay, only the audit chats are added
    settings = fresh_run.settings()
    audit_chunks = [c for c in fresh_run.chunks.glob("*.parquet") if "audit-heldout" in str(read_sidecar(c))]
    assert audit_chunks
    for chunk in audit_chunks:
        chunk.unlink()
    fresh_run.split(AUDIT_EVAL).unlink()
    kept = {c.name: c.stat().st_mtime_ns for c in fresh_run.chunks.glob("*.parquet")}
    run_datagen(fresh_run, settings, chunk_docs=5, show_progress=False)
    assert all(
        c.stat().st_mtime_ns == kept[c.name] for c in fresh_run.chunks.glob("*.parquet") if c.name in kept
    )
    for name in ALL_SPLITS:
        assert (read_table(fresh_run.split(name))[1] == read_table(tiny_run.split(name))[1]).all()


def test_content_recall_counts_content_words_of_the_source_tail_only(tiny_dirs) -> None:
    from nla.resolve import load_tokenizer
    from nla.training.content_recall import recalls_content, scaffolding, source_tail
    from tests.tiny_models import CORPUS

    teacher = [heuristic_explanation({"detokenized_text_truncated": t, "role": "text", "token": ".",
                                      "next_tokens": ["a", "b", "c"]}) for t in CORPUS]  # fmt: skip
    scaffold = scaffolding(teacher)
    assert {"prose", "recent", "text", "final", "token", "likely", "sentence"} <= scaffold
    tails = ["The auditor reviewed the wire transfer slowly."] * 4
    explanations = [
        'Prose about transfers.\n\nRecent text: "the wire"',  # names a tail word (wire)
        "Prose about the.\n\nFinal token ends a sentence; next likely text.",  # scaffolding and stop words
        "An assistant's chat reply about volcanoes.",  # content, but not the source's
        "The AUDITOR's notes.",  # case and possessive do not matter
    ]
    assert recalls_content(explanations, tails, scaffold) == [True, False, False, True]
    tokenizer = load_tokenizer(str(tiny_dirs["llama"]))
    long = " ".join(CORPUS * 4)
    tail = source_tail(tokenizer, long, tokens=8)
    assert len(tokenizer.encode(tail, add_special_tokens=False)) <= 8 and long.endswith(tail.strip())
    assert source_tail(tokenizer, long, tokens=8) != source_tail(tokenizer, long, tokens=16)


def test_a_run_can_leave_another_runs_held_out_documents_out(tiny_run: RunDir, tmp_path) -> None:
    other = RunDir(tmp_path / "other")
    settings = tiny_run.settings().model_copy(update={"held_out_of": str(tiny_run.root), "seed": 1})
    run_datagen(other, settings, chunk_docs=8, show_progress=False)
    theirs = set(read_table(tiny_run.split("eval"))[0]["doc_id"])
    ours = {d for name in SPLITS for d in read_table(other.split(name))[0]["doc_id"]}
    assert theirs and ours and not theirs & ours
    with pytest.raises(NLAError, match="--held-out-of .*not a training run"):
        run_datagen(
            RunDir(tmp_path / "third"),
            settings.model_copy(update={"held_out_of": str(tmp_path)}),
            show_progress=False,
        )


def test_the_lens_teacher_names_what_the_vector_reads_out(fresh_run: RunDir) -> None:
    import torch

    from nla.logit_lens import logit_lens
    from nla.training.teachers import LensTeacher

    settings = fresh_run.settings()
    teacher = make_teacher("heuristic-lens", settings.target, settings.layer)
    assert isinstance(teacher, LensTeacher) and f"L{settings.layer}" in teacher.id
    run_explain(fresh_run, teacher, show_progress=False)
    frame, vectors = read_table(fresh_run.explained("eval"))
    lens = logit_lens(
        teacher.target.model, teacher.target.tokenizer, torch.from_numpy(vectors), settings.layer, 3
    )
    for row, reading in zip(frame.to_dict("records"), lens, strict=True):
        expected = heuristic_explanation({**row, "next_tokens": reading.tokens})
        assert row["explanation"] == expected
    assert any(row["explanation"] != heuristic_explanation(row) for row in frame.to_dict("records"))
