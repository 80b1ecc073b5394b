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
from nla.training.run import SPLITS, TEACHER_SPLITS, RunDir
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
