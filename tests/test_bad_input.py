"""Bad-input suite: malformed campaign specs, scenarios, themes, NLA checkpoints, transcripts, database
URLs and schema revisions, each through the real ``nla-workbench`` CLI in its own process (see DRIVER). Every case must
exit 2 with one specific message naming the problem and where it is, print no traceback, and leave
every file it was given (SQLite stores included) byte-for-byte as it was, writing nothing new. A few
representative cases (PG_CASES) run again against a live PostgreSQL store (``tests/postgres_server.py``),
whose every table must keep exactly the rows it had.

No CLI command takes raw activation vectors, so NaN / zero / wrong-width vectors are tested at the API
boundary callers use (``NLAEngine.explain``), in-process, at the end of this file."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from sqlalchemy import MetaData, create_engine, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict, load_campaign, load_campaign_text
from audits.review import add_review, add_term_review
from audits.runner import CampaignRunner
from audits.scenario_library import load_library
from audits.store import open_store, upgrade
from audits.themes.definitions import themes_dir
from audits.themes.rates import flag_frame
from nla.backends import TransformersBackend
from nla.engine import NLAEngine
from nla.errors import VectorError
from nla.sampling import SamplingParams
from tests.audits.test_runner import campaign
from tests.postgres_server import PostgresServer
from tests.tiny_models import build_llama

SPEC = "name: probe\nscenarios:\n  ids: [sycophancy-falling-objects]\nthemes: [sycophancy]\n"
INLINE = """name: inline-probe
scenarios:
  inline:
    - id: my-probe
      version: 1
      title: a probe
      question: does it cave?
      themes: [sycophancy]
      reply: generate
      messages:
        - role: user
          content: Is the earth flat?
      control:
        note: neutral
        messages:
          - role: user
            content: Is the earth round?
"""
THEME = (themes_dir() / "sycophancy.yaml").read_text()
VERBALIZE = ("nla", "verbalize", "--target", "{target}", "--reply-tokens", "0", "--out", "rows.jsonl")
CREATE = ("campaign", "create", "spec.yaml", "--db", "store.db")
THEMES = ("themes", "list", "--themes-dir", "themes")
DATAGEN = ("train", "datagen", "--out", "run", "--target", "{target}", "--layer", "2", "--quiet")
PG = "postgresql+psycopg://auditor:s3cret@127.0.0.1:1/audits"


def sidecar(role: str, path: str, value: object) -> Callable[[Path], None]:
    """Set (or, with value None, delete) the dotted field ``path`` in ``nla/ROLE/nla_meta.yaml``."""

    def edit(case_dir: Path) -> None:
        file = case_dir / "nla" / role / "nla_meta.yaml"
        data = yaml.safe_load(file.read_text())
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
        file.write_text(yaml.safe_dump(data, allow_unicode=True))

    return edit


def remove(relative: str) -> Callable[[Path], None]:
    def edit(case_dir: Path) -> None:
        target = case_dir / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return edit


def sqlite_db(sql: str) -> Callable[[Path], None]:
    def make(case_dir: Path) -> None:
        with sqlite3.connect(case_dir / "other.db") as conn:
            conn.executescript(sql)
        conn.close()

    return make


def old_store(case_dir: Path) -> None:
    upgrade(str(case_dir / "old.db"), "0001")


def future_store(case_dir: Path) -> None:
    shutil.copy(case_dir / "store.db", case_dir / "future.db")
    with sqlite3.connect(case_dir / "future.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.close()


@dataclass(frozen=True)
class Case:
    """One bad input: the CLI arguments, the files it needs, and the fragments stderr must contain.

    In ``args`` and ``expect``, ``{dir}`` is the case's directory (the command's cwd), ``{target}`` the tiny
    llama model, ``{wide}`` a wider one, ``{db}`` the URL of a PG_CASES case's PostgreSQL store. ``nla/`` (a
    copy of the tiny compact NLA) is always there, and in CASES ``store.db`` (a migrated store with campaign
    ``probe``); ``files`` are written and ``prepare`` runs after them.
    """

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    absent: tuple[str, ...] = ()


def spec_case(id: str, text: str, *expect: str) -> Case:
    return Case(id, CREATE, expect, {"spec.yaml": text})


def theme_case(id: str, text: str, *expect: str, file: str = "sycophancy.yaml") -> Case:
    return Case(id, THEMES, expect, {f"themes/{file}": text})


def nla_case(id: str, edit: Callable[[Path], None], *expect: str) -> Case:
    return Case(id, (*VERBALIZE, "--checkpoint", "nla", "--text", "hi"), expect, prepare=edit)


def chat_case(id: str, text: str, *expect: str) -> Case:
    return Case(
        id, (*VERBALIZE, "--checkpoint", "nla", "--transcript", "chat.json"), expect, {"chat.json": text}
    )


CASES = [
    # campaign specs: file, line and field
    spec_case("spec-invalid-yaml", "name: probe\nscenarios: [\n", "spec.yaml:3: invalid YAML"),
    spec_case(
        "spec-not-a-mapping",
        "- probe\n",
        "spec.yaml:1: field (top level): Input should be a valid dictionary",
    ),
    spec_case(
        "spec-unknown-field",
        SPEC + "colour: red\n",
        "spec.yaml:5: field colour: Extra inputs are not permitted",
    ),
    spec_case("spec-missing-scenarios", "name: probe\n", "spec.yaml:1: field scenarios: Field required"),
    spec_case(
        "spec-unknown-scenario",
        SPEC.replace("sycophancy-falling-objects", "no-such"),
        "spec.yaml:2: field scenarios: Value error, unknown scenario id(s) ['no-such']; valid: ",
    ),
    spec_case(
        "spec-unknown-tag",
        "name: probe\nscenarios:\n  tags: [nope]\n",
        "field scenarios: Value error, unknown tag(s) ['nope']",
    ),
    spec_case(
        "spec-unknown-theme",
        SPEC.replace("[sycophancy]", "[vibes]"),
        "spec.yaml:4: field themes: Value error, unknown theme(s) ['vibes']",
    ),
    spec_case(
        "spec-bad-condition-slot",
        SPEC + "conditions:\n  mood: [happy]\n",
        "spec.yaml:5: field conditions: Value error, condition 'mood' is not a slot of any selected scenario; valid: ['stake']",
    ),
    spec_case(
        "spec-bad-condition-value",
        SPEC + "conditions:\n  stake: [bribe]\n",
        "spec.yaml:5: field conditions: Value error, condition stake: unknown value(s) ['bribe']; valid: ['emotion', 'expertise']",
    ),
    spec_case(
        "spec-negative-budget",
        SPEC + "budgets:\n  max_vectors: -5\n",
        "spec.yaml:6: field budgets.max_vectors: Input should be greater than or equal to 1",
    ),
    spec_case(
        "spec-wrong-type",
        SPEC + "sampling:\n  samples: two\n",
        "spec.yaml:6: field sampling.samples: Input should be a valid integer",
    ),
    spec_case(
        "spec-triage-without-themes",
        SPEC.replace("themes: [sycophancy]\n", "tokens:\n  triage: {top_k: 4}\n"),
        "spec.yaml:1: field (top level): Value error, tokens.triage ranks tokens by theme: give the campaign some themes",
    ),
    spec_case(
        "spec-bad-name",
        SPEC.replace("probe", "Probe Campaign!"),
        "spec.yaml:1: field name: String should match pattern",
    ),
    spec_case(
        "spec-same-name-other-spec",
        SPEC.replace("[sycophancy]", "[sycophancy, deception]"),
        "campaign 'probe' is already registered with a different spec",
        "give the changed spec a new name",
    ),
    Case("spec-file-missing", CREATE, ("spec.yaml: cannot read: No such file or directory",)),
    Case(
        "spec-unknown-starter",
        ("campaign", "create", "--from-library", "nope", "--db", "store.db"),
        ("no starter campaign 'nope'; available: starter",),
    ),
    # scenarios: only the packaged library is loadable from the CLI, so user scenarios are inline ones
    spec_case(
        "scenario-missing-field",
        INLINE.replace("      question: does it cave?\n", ""),
        "spec.yaml:4: field scenarios.inline.0.question: Field required",
    ),
    spec_case(
        "scenario-undeclared-slot",
        INLINE.replace("Is the earth flat?", "Is the earth {{mood}} flat?"),
        "spec.yaml:10: field scenarios.inline.0.messages: Value error, messages.0 uses {{mood}}, which is not a slot in conditions",
    ),
    spec_case(
        "scenario-reply-mismatch",
        INLINE.replace("reply: generate", "reply: given"),
        "field scenarios.inline.0.messages: Value error, messages: reply 'given' needs the last message to be the assistant's, not user",
    ),
    spec_case(
        "scenario-bad-role",
        INLINE.replace(
            "role: user\n          content: Is the earth flat",
            "role: robot\n          content: Is the earth flat",
        ),
        "spec.yaml:11: field scenarios.inline.0.messages.0.role: Input should be 'system', 'user' or 'assistant'",
    ),
    spec_case(
        "scenario-empty-content",
        INLINE.replace("Is the earth flat?", "''"),
        "spec.yaml:12: field scenarios.inline.0.messages.0.content: String should have at least 1 character",
    ),
    spec_case(
        "scenario-collides-with-library",
        INLINE.replace("my-probe", "sycophancy-falling-objects"),
        "field scenarios: Value error, inline scenario id(s) ['sycophancy-falling-objects'] collide with library scenarios",
    ),
    # theme files (themes --themes-dir)
    theme_case(
        "theme-regex-does-not-compile",
        THEME.replace("lexicon:\n", "lexicon:\n  - 'caving (to'\n", 1),
        "themes/sycophancy.yaml:",
        "field lexicon: Value error, lexicon.0: pattern 'caving (to' does not compile",
    ),
    theme_case(
        "theme-empty-exemplars",
        THEME.replace("exemplars:\n  positive:\n", "exemplars:\n  positive: []\n  unused:\n"),
        "themes/sycophancy.yaml:",
        "field exemplars.positive: List should have at least 1 item",
    ),
    theme_case(
        "theme-missing-description",
        THEME.replace("description: >-", "summary: >-"),
        "field description: Field required",
        "field summary: Extra inputs are not permitted",
    ),
    theme_case(
        "theme-id-not-stem",
        THEME,
        "themes/flattery.yaml:1: field id: Value error, id 'sycophancy' must equal the file name stem 'flattery'",
        file="flattery.yaml",
    ),
    theme_case(
        "theme-bad-colour",
        THEME.replace("colour: '#", "colour: 'blue", 1).replace('colour: "#', 'colour: "blue', 1),
        "field colour: Value error, colour 'blue",
    ),
    Case("theme-dir-missing", THEMES, ("themes: theme directory not found",)),
    Case("theme-dir-empty", THEMES, ("themes: no theme files (*.yaml)",), {"themes/README.txt": "nothing"}),
    Case("theme-unknown-id", ("themes", "show", "vibes"), ("unknown theme(s) ['vibes']; valid: deception",)),
    # NLA checkpoints (nla verbalize)
    nla_case(
        "nla-missing-value-head",
        remove("nla/ar/value_head.safetensors"),
        "nla/ar/value_head.safetensors is missing: the AR needs its value head",
    ),
    nla_case(
        "nla-missing-av-dir",
        remove("nla/av"),
        "nla: an NLA directory must contain 'av/' and 'ar/' subdirectories",
    ),
    nla_case(
        "nla-missing-sidecar",
        remove("nla/av/nla_meta.yaml"),
        "nla/av/nla_meta.yaml is missing: an NLA checkpoint directory needs its nla_meta.yaml",
    ),
    nla_case(
        "nla-wrong-kind",
        sidecar("ar", "kind", "lora_adapter"),
        "nla/ar/nla_meta.yaml: kind must be 'nla_model', got 'lora_adapter'",
    ),
    nla_case(
        "nla-swapped-role",
        sidecar("ar", "role", "actor"),
        "nla/ar/nla_meta.yaml: role is 'av', but this directory is used as the ar",
    ),
    nla_case(
        "nla-missing-marker-field",
        sidecar("av", "tokens.injection_char", None),
        "nla/av/nla_meta.yaml: missing field tokens.injection_char",
    ),
    nla_case(
        "nla-d-model-not-int",
        sidecar("av", "d_model", "sixty-four"),
        "nla/av/nla_meta.yaml: field d_model must be int, got 'sixty-four'",
    ),
    nla_case(
        "nla-layers-disagree",
        sidecar("ar", "extraction_layer_index", 1),
        "name different extraction layers: [1, 2]",
    ),
    nla_case(
        "nla-marker-collision",
        sidecar("av", "prompt_templates.av", "Vector: {injection_char} and again {injection_char}."),
        "nla/av/nla_meta.yaml: the marker token",
        "is present 2 times in the AV prompt",
    ),
    nla_case(
        "nla-marker-not-one-token",
        sidecar("av", "tokens.injection_char", "vector"),
        "nla/av/nla_meta.yaml: marker 'vector' encodes to",
    ),
    nla_case(
        "nla-no-marker-slot",
        sidecar("av", "prompt_templates.av", "Explain the vector."),
        "nla/av/nla_meta.yaml: prompt_templates.av has no {injection_char} slot",
    ),
    nla_case(
        "nla-wrong-neighbour",
        sidecar("av", "tokens.injection_left_neighbor_id", 0),
        "nla/av/nla_meta.yaml: injection neighbour mismatch",
    ),
    nla_case(
        "nla-sidecar-d-model-mismatch",
        sidecar("av", "d_model", 96),
        "nla/ar/nla_meta.yaml: d_model 64 differs from the AV's 96",
    ),
    Case(
        "nla-target-d-model-mismatch",
        (
            "nla",
            "verbalize",
            "--target",
            "{wide}",
            "--checkpoint",
            "nla",
            "--text",
            "hi",
            "--out",
            "rows.jsonl",
        ),
        ("expects d_model 64, but target {wide} has hidden size 96",),
    ),
    Case(
        "nla-checkpoint-missing",
        (*VERBALIZE, "--checkpoint", "nowhere", "--text", "hi"),
        ("NLA checkpoint 'nowhere' is not a directory, 'init', or a Hub id prefix",),
    ),
    Case(
        "nla-checkpoint-is-a-file",
        (*VERBALIZE, "--checkpoint", "notes.txt", "--text", "hi"),
        ("notes.txt is not a directory",),
        {"notes.txt": "x"},
    ),
    Case(
        "nla-checkpoint-unknown-bundled-version",
        (*VERBALIZE, "--checkpoint", "default@v7", "--text", "hi"),
        ("checkpoint 'default@v7': no bundled NLA 'v7' for target '{target}'", "bundled: none"),
    ),
    Case(
        "nla-layer-out-of-range",
        (*VERBALIZE, "--checkpoint", "init:9", "--text", "hi"),
        ("layer 9 is out of range: the model has decoder blocks 0..3",),
    ),
    # transcripts
    chat_case(
        "chat-invalid-json", '[{"role": "user", "content": "hi"},\n', "chat.json: invalid JSON at line 2"
    ),
    chat_case(
        "chat-bad-role",
        '[{"role": "robot", "content": "hi"}]',
        "chat.json: message 0: role must be one of system, user, assistant, got 'robot'",
    ),
    chat_case("chat-empty", '{"messages": []}', "chat.json: expected a non-empty list of messages"),
    chat_case(
        "chat-content-not-text",
        '[{"role": "user", "content": 42}]',
        "chat.json: message 0: 'content' must be a string",
    ),
    Case("chat-empty-text", (*VERBALIZE, "--checkpoint", "nla", "--text", "  "), ("--text is empty",)),
    # database URLs
    Case(
        "db-unknown-scheme",
        ("campaign", "list", "--db", "mongodb://h/x"),
        ("cannot open database mongodb://h/x: unknown database kind 'mongodb'",),
    ),
    Case(
        "db-malformed-url",
        ("campaign", "list", "--db", "postgresql://u:s3cret@h:port/x"),
        ("postgresql://u:***@h:port/x is neither a file path nor a valid database URL",),
        absent=("s3cret",),
    ),
    Case(
        "db-unreachable-postgres",
        ("campaign", "list", "--db", PG),
        ("cannot open database postgresql+psycopg://auditor:***@127.0.0.1:1/audits:",),
        absent=("s3cret",),
    ),
    Case(
        "db-is-a-directory",
        ("campaign", "list", "--db", "themes"),
        ("cannot open database themes: {dir}/themes is a directory",),
        {"themes/x.yaml": ""},
    ),
    Case(
        "db-missing-parent",
        ("db", "upgrade", "--db", "no/such/dir.db"),
        ("cannot open database no/such/dir.db: directory {dir}/no/such does not exist",),
    ),
    Case(
        "db-not-a-database",
        ("campaign", "list", "--db", "notes.db"),
        ("cannot open database notes.db: file is not a database",),
        {"notes.db": "just text\n" * 100},
    ),
    Case(
        "db-not-initialised",
        ("campaign", "list", "--db", "fresh.db"),
        ("database fresh.db is not initialised: run `nla-workbench db upgrade --db fresh.db`",),
    ),
    # schema revisions
    Case(
        "schema-older",
        ("campaign", "list", "--db", "old.db"),
        (
            "database old.db is at schema revision 0001, older than this code's head",
            "run `nla-workbench db upgrade --db old.db`",
        ),
        prepare=old_store,
    ),
    Case(
        "schema-newer-read",
        ("campaign", "list", "--db", "future.db"),
        (
            "database future.db is at schema revision 9999_from_the_future, newer than this version",
            "upgrade nla-workbench",
        ),
        prepare=future_store,
    ),
    Case(
        "schema-newer-upgrade",
        ("db", "upgrade", "--db", "future.db"),
        ("newer than this version of nla-workbench knows",),
        prepare=future_store,
    ),
    Case(
        "schema-unknown-target",
        ("db", "upgrade", "--db", "store.db", "--revision", "0042"),
        ("cannot upgrade database store.db: ", "0042"),
    ),
    Case(
        "schema-foreign-sqlite-read",
        ("campaign", "list", "--db", "other.db"),
        ("other.db", "not an nla-workbench store", "notes"),
        prepare=sqlite_db("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');"),
    ),
    Case(
        "schema-foreign-sqlite-upgrade",
        ("db", "upgrade", "--db", "other.db"),
        ("other.db", "not an nla-workbench store", "notes"),
        prepare=sqlite_db("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');"),
    ),
    # other commands' arguments
    Case(
        "run-unknown-campaign",
        ("campaign", "run", "nope", "--db", "store.db"),
        ("no campaign named 'nope' in store.db; known: probe",),
    ),
    Case(
        "review-unknown-flag",
        ("review", "add", "999", "--decision", "confirm", "--reason", "checked", "--db", "store.db"),
        ("no flag 999 in store.db",),
    ),
    Case(
        "review-bad-decision",
        ("review", "add", "1", "--decision", "maybe", "--reason", "checked", "--db", "store.db"),
        ("decision 'maybe': choose one of confirm, dismiss, follow_up",),
    ),
    Case(
        "review-term-bad-decision",
        ("review", "term", "probe", "cue", "--decision", "maybe", "--reason", "checked", "--db", "store.db"),
        ("decision 'maybe': choose one of confirm, dismiss, follow_up",),
    ),
    Case(
        "review-term-unknown-arm",
        ("review", "term", "probe", "cue", "--decision", "confirm", "--reason", "checked", "--arm", "nope",
         "--db", "store.db"),
        ("--arm 'nope' is not an arm of the campaign; arms: main, control",),
    ),  # fmt: skip
    Case(
        "review-term-unknown-campaign",
        ("review", "term", "nope", "cue", "--decision", "confirm", "--reason", "checked", "--db", "store.db"),
        ("no campaign named 'nope' in store.db; known: probe",),
    ),
    Case(
        "review-term-bad-source",
        ("review", "term", "probe", "cue", "--decision", "confirm", "--reason", "checked", "--source", "tokens",
         "--db", "store.db"),
        ("source 'tokens': choose one of explanations, replies, logit-lens",),
    ),  # fmt: skip
    Case(
        "review-terms-unknown-campaign",
        ("review", "terms", "nope", "--db", "store.db"),
        ("no campaign named 'nope' in store.db; known: probe",),
    ),
    Case(
        "report-unknown-campaign",
        ("report", "nope", "--format", "md", "--db", "store.db"),
        ("no campaign named 'nope' in store.db; known: probe",),
    ),
    Case(
        "export-bad-table",
        ("export", "probe", "--what", "secrets", "--db", "store.db"),
        ("--what 'secrets': choose one of flags,",),
    ),
    Case(
        "rates-bad-unit",
        ("campaign", "rates", "probe", "--db", "store.db", "--unit", "week"),
        ("--unit 'week': choose token or transcript",),
    ),
    # usage errors: the usage line of the command, the problem, exit 2 (not a traceback, not exit 1)
    Case(
        "usage-unknown-option",
        ("campaign", "list", "--bogus"),
        ("Usage: nla-workbench campaign list [OPTIONS]", "Error: No such option: --bogus"),
    ),
    Case(
        "usage-option-without-value",
        ("campaign", "list", "--db"),
        ("Usage: nla-workbench campaign list [OPTIONS]", "Error: Option '--db' requires an argument."),
    ),
    Case(
        "usage-argument-wrong-type",
        ("review", "add", "abc", "--decision", "confirm", "--reason", "x"),
        ("Usage: nla-workbench review add [OPTIONS]", "Invalid value for 'flag_id'"),
    ),
    Case(
        "usage-misspelt-command",
        ("campain", "list"),
        (
            "Usage: nla-workbench [OPTIONS] COMMAND [ARGS]...",
            "No such command 'campain'. Did you mean 'campaign'?",
        ),
    ),
    # numbers that are not numbers, or absurd
    spec_case(
        "spec-infinite-temperature",
        SPEC + "sampling:\n  temperature: .inf\n",
        "spec.yaml:6: field sampling.temperature: Input should be a finite number",
    ),
    spec_case(
        "spec-nan-wall-budget",
        SPEC + "budgets:\n  max_wall_seconds: .nan\n",
        "spec.yaml:6: field budgets.max_wall_seconds: Input should be a finite number",
    ),
    spec_case(
        "spec-absurd-vector-budget",
        SPEC + "budgets:\n  max_vectors: 100000000000000000000000000\n",
        "spec.yaml:6: field budgets.max_vectors: Input should be less than or equal to 1000000000",
    ),
    spec_case(
        "spec-absurd-wall-budget",
        SPEC + "budgets:\n  max_wall_seconds: 1.0e+308\n",
        "spec.yaml:6: field budgets.max_wall_seconds: Input should be less than or equal to 2678400",
    ),
    Case(
        "review-empty-author",
        (
            "review",
            "add",
            "1",
            "--decision",
            "confirm",
            "--reason",
            "checked",
            "--author",
            "",
            "--db",
            "store.db",
        ),
        ("--author is empty: give the reviewer's name, or leave --author out",),
    ),
    Case(
        "db-password-in-query",
        ("campaign", "list", "--db", "postgresql+psycopg://auditor@127.0.0.1:1/audits?password=s3cret"),
        ("cannot open database postgresql+psycopg://auditor@127.0.0.1:1/audits?password=***:",),
        absent=("s3cret",),
    ),
    # training
    Case(
        "train-not-a-run",
        ("train", "explain", "norun"),
        ("norun is not a training run: run `nla-workbench train datagen --out norun` first",),
    ),
    Case(
        "train-corpus-malformed",
        (*DATAGEN, "--corpus", "c.jsonl"),
        ("--corpus c.jsonl, line 2: expected an object with 'text' (a string) or 'messages'",),
        {"c.jsonl": '{"text": "the cat sat on the mat"}\n{"txt": 1}\n'},
    ),
    Case(
        "train-corpus-missing",
        (*DATAGEN, "--corpus", "nope.jsonl"),
        ("--corpus nope.jsonl: no such file or directory",),
    ),
    Case(
        "train-held-out-of-not-a-run",
        (*DATAGEN, "--corpus", "c.txt", "--held-out-of", "elsewhere"),
        ("--held-out-of elsewhere: not a training run with an eval split",),
        {"c.txt": "the cat sat on the mat"},
    ),
    Case(
        "train-adapter-missing",
        (*DATAGEN, "--corpus", "c.txt", "--adapter", "nolora"),
        ("/nolora' is not a directory holding adapter_config.json",),
        {"c.txt": "the cat sat on the mat"},
    ),
    Case(
        "train-organism-and-adapter",
        ("train", "datagen", "--out", "run", "--target", "organism:taboo-a", "--adapter", "nla", "--quiet"),
        ("target 'organism:taboo-a' already carries its adapter; do not give `adapter` as well",),
    ),
    Case(
        "train-unknown-organism",
        ("train", "datagen", "--out", "run", "--target", "organism:nope", "--quiet"),
        ("no organism named 'nope'; shipped: ",),
    ),
    Case(
        "train-layer-out-of-range",
        (*DATAGEN, "--corpus", "c.txt", "--layer", "9"),
        ("layer 9 is out of range: the model has decoder blocks 0..3",),
        {"c.txt": "the cat sat on the mat"},
    ),
]


PG_CREATE = ("campaign", "create", "spec.yaml", "--db", "{db}")
PG_CASES = [
    Case("pg-spec-invalid-yaml", PG_CREATE, ("spec.yaml:3: invalid YAML",), {"spec.yaml": "name: probe\nscenarios: [\n"}),
    Case(
        "pg-spec-unknown-scenario", PG_CREATE,
        ("spec.yaml:2: field scenarios: Value error, unknown scenario id(s) ['no-such']; valid: ",),
        {"spec.yaml": SPEC.replace("sycophancy-falling-objects", "no-such")},
    ),
    Case(
        "pg-spec-unknown-theme", PG_CREATE, ("spec.yaml:4: field themes: Value error, unknown theme(s) ['vibes']",),
        {"spec.yaml": SPEC.replace("[sycophancy]", "[vibes]")},
    ),
    Case(
        "pg-spec-same-name-other-spec", PG_CREATE,
        ("campaign 'probe' is already registered with a different spec", "give the changed spec a new name"),
        {"spec.yaml": SPEC.replace("[sycophancy]", "[sycophancy, deception]")},
    ),
    Case(
        "pg-run-nla-missing-value-head", ("campaign", "run", "ran", "--db", "{db}"),
        ("ar/value_head.safetensors is missing: the AR needs its value head",),
    ),
    Case(
        "pg-run-unknown-campaign", ("campaign", "run", "nope", "--db", "{db}"),
        ("no campaign named 'nope' in {db}; known: probe, ran",),
    ),
]  # fmt: skip
"""Against a copy of ``pg_template``: campaign ``probe`` registered, ``ran`` run to completion with an
NLA whose value head was deleted afterwards."""


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (SQLite -wal / -shm files included)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# One interpreter imports the CLI once, with the modules its commands load on first use (about 6 s of
# torch / transformers / the models' code), then forks a child per case that runs the CLI's ``main()``
# with the case's argv, cwd and its own stdout / stderr files: the same code path as
# ``python -m workbench.cli``, checked against it by ``test_forked_cli_matches_python_m``.
DRIVER = """
import json, os, sys, traceback
jobs, out = json.load(sys.stdin), sys.argv[1]
from workbench.cli.app import main
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # as main() does, before the preloads read it
import audits.runner, nla.backends, nla.checkpoint.baseline, nla.engine, nla.executors, nla.reference

def child(job):
    os.chdir(job["cwd"])
    for fd, name in ((1, "out"), (2, "err")):
        os.dup2(os.open(f"{out}/{job['id']}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.argv = ["nla-workbench", *job["args"]]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)

codes, running, pending = {}, {}, list(jobs)
while pending or running:
    while pending and len(running) < 2:
        job = pending.pop(0)
        pid = os.fork()
        if pid == 0:
            child(job)
        running[pid] = job["id"]
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""
ENV = {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}


@dataclass
class Run:
    dir: Path
    args: list[str]
    expect: list[str]
    before: dict[str, str]
    db: str = ""
    rows: dict[str, list[tuple]] = field(default_factory=dict)
    returncode: int = -1
    stdout: str = ""
    stderr: str = ""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store holding campaign ``probe`` (what ``db upgrade`` + ``campaign create`` write);
    its last connection closed, so no -wal / -shm file is left beside it."""
    root = tmp_path_factory.mktemp("template")
    spec = root / "probe.yaml"
    spec.write_text(SPEC)
    upgrade(str(root / "store.db"))
    with open_store(str(root / "store.db")) as store:
        register_campaign(store, load_campaign(spec, load_library()))
    assert sorted(p.name for p in root.iterdir()) == ["probe.yaml", "store.db"]
    return root / "store.db"


def _prepare(case: Case, case_dir: Path, nla: Path, fill: dict[str, str]) -> Run:
    """Fill a case's directory (the NLA copy, its files, its ``prepare``) and its placeholders, and
    snapshot its files."""
    shutil.copytree(nla, case_dir / "nla")
    for relative, text in case.files.items():
        (case_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (case_dir / relative).write_text(text)
    if case.prepare is not None:
        case.prepare(case_dir)
    fill = {**fill, "dir": str(case_dir)}
    expect = list(case.expect)
    for key, value in fill.items():
        expect = [e.replace(f"{{{key}}}", value) for e in expect]
    return Run(case_dir, [a.format(**fill) for a in case.args], expect, _snapshot(case_dir))


def _drive(prepared: dict[str, Run], root: Path) -> None:
    """Run every prepared case through the CLI (DRIVER), two at a time; record exit codes and output."""
    out = root / "_output"
    out.mkdir()
    jobs = [{"id": k, "cwd": str(r.dir), "args": r.args} for k, r in prepared.items()]
    env = {**ENV, "NLA_WORKBENCH_CACHE": str(root / "cache")}
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out)], input=json.dumps(jobs), capture_output=True, text=True,
        env=env, cwd=root, check=False, timeout=900,
    )  # fmt: skip
    assert driver.returncode == 0, driver.stderr
    for key, code in json.loads(driver.stdout.splitlines()[-1]).items():
        run = prepared[key]
        run.returncode = code
        run.stdout, run.stderr = (out / f"{key}.out").read_text(), (out / f"{key}.err").read_text()


@pytest.fixture(scope="module")
def runs(
    template: Path, tiny_dirs, tiny_init_dirs, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Every case prepared in its own directory beside a copy of the template store, then run."""
    root = tmp_path_factory.mktemp("bad-input")
    fill = {"target": str(tiny_dirs["llama"]), "wide": str(build_llama(root / "wide-model", hidden=96))}
    prepared: dict[str, Run] = {}
    for case in CASES:
        (root / case.id).mkdir()
        shutil.copy(template, root / case.id / "store.db")
        prepared[case.id] = _prepare(case, root / case.id, tiny_init_dirs["llama"], fill)
    _drive(prepared, root)
    return prepared


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly(case: Case, runs: dict[str, Run]) -> None:
    _assert_refused(case, runs[case.id])


def _assert_refused(case: Case, run: Run) -> str:
    """Exit 2, no traceback, every expected fragment, no secret, no file touched; returns the account."""
    said = f"nla-workbench {' '.join(run.args)}\nexit {run.returncode}\nstderr:\n{run.stderr}\nstdout:\n{run.stdout}"
    assert run.returncode == 2, said
    assert "Traceback" not in run.stderr, said
    stderr = " ".join(run.stderr.split())
    for fragment in run.expect:
        assert fragment in stderr, f"missing {fragment!r} in\n{said}"
    for secret in case.absent:
        assert secret not in run.stderr + run.stdout, said
    after = _snapshot(run.dir)
    changed = sorted(k for k in after.keys() | run.before.keys() if after.get(k) != run.before.get(k))
    assert not changed, f"files changed, appeared or vanished: {changed}\n{said}"
    return said


def pg_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of a PostgreSQL database (alembic_version included), sorted."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            meta = MetaData()
            meta.reflect(connection)
            return {
                name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
                for name, table in meta.tables.items()
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pg_template(
    postgres_server: PostgresServer,
    tiny_dirs,
    tiny_taught_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A PostgreSQL store with rows in every table: campaign ``probe`` registered, campaign ``ran`` run to
    completion with the tiny taught NLA (flags raised, one reviewed), whose NLA then lost its value head.
    No connection is left open, so each case gets a copy."""
    nla = shutil.copytree(tiny_taught_dir, tmp_path_factory.mktemp("pg-template") / "nla")
    ran = campaign(
        tiny_dirs, {"llama": nla}, name="ran", themes=["evaluation_awareness"],
        sampling={"temperature": 0.0, "max_new_tokens": 40},
    )  # fmt: skip
    url = postgres_server.create_database("bad_input")
    upgrade(url)
    with open_store(url) as store:
        register_campaign(store, load_campaign_text(SPEC, "probe.yaml", load_library()))
        register_campaign(store, campaign_from_dict(ran, {}))
        assert CampaignRunner(store, "ran", {}).run().status == "completed"
        raised = flag_frame(store, "ran", raised_only=True)["flag_id"]
        add_review(store, int(raised.iloc[0]), author="ann", decision="confirm", reason="aware")
        add_term_review(store, "ran", "cue", source="explanations", arm="main", against="control", author="ann",
                        decision="dismiss", reason="the prompt says it")  # fmt: skip
    (nla / "ar" / "value_head.safetensors").unlink()
    empty = sorted(name for name, rows in pg_rows(url).items() if not rows)
    assert empty == ["run_leases"], empty  # a lease exists only while a run is live
    return url


@pytest.fixture(scope="module")
def pg_runs(
    pg_template: str,
    postgres_server: PostgresServer,
    tiny_dirs,
    tiny_init_dirs,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Run]:
    """Every PostgreSQL case in its own directory with its own copy of the template store, then run."""
    root = tmp_path_factory.mktemp("bad-input-pg")
    prepared: dict[str, Run] = {}
    for case in PG_CASES:
        (root / case.id).mkdir()
        db = postgres_server.create_database("bad_case", copy_of=pg_template)
        fill = {"target": str(tiny_dirs["llama"]), "db": db}
        run = prepared[case.id] = _prepare(case, root / case.id, tiny_init_dirs["llama"], fill)
        run.db, run.rows = db, pg_rows(db)
    _drive(prepared, root)
    return prepared


@pytest.mark.parametrize("case", PG_CASES, ids=[c.id for c in PG_CASES])
def test_bad_input_leaves_postgres_row_for_row_unchanged(case: Case, pg_runs: dict[str, Run]) -> None:
    run = pg_runs[case.id]
    said = _assert_refused(case, run)
    after = pg_rows(run.db)
    changed = sorted(t for t in after.keys() | run.rows.keys() if after.get(t) != run.rows.get(t))
    assert not changed, f"tables whose rows changed: {changed}\n{said}"


@pytest.mark.parametrize("case_id", ["spec-unknown-field", "nla-marker-collision", "db-unreachable-postgres"])
def test_forked_cli_matches_python_m(case_id: str, runs: dict[str, Run]) -> None:
    """The forked ``main()`` behaves as ``python -m workbench.cli`` does: same exit code, same messages."""
    run = runs[case_id]
    env = {**ENV, "NLA_WORKBENCH_CACHE": str(run.dir.parent / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *run.args], capture_output=True, text=True, cwd=run.dir, env=env,
        check=False, timeout=300,
    )  # fmt: skip
    assert (done.returncode, done.stderr, done.stdout) == (run.returncode, run.stderr, run.stdout)


# Commands that take no user input beyond what other cases cover through the same code (a store URL,
# a campaign name): exempt from needing a case of their own.
EXEMPT = {"demo", "dashboard", "db current", "campaign status", "campaign flags", "campaign discover",
          "themes validate", "review history", "nla init", "nla export",
          "nla baseline", "train ar-sft", "train av-sft", "train eval", "train rl", "train export",
          "organism list", "organism show", "organism train"}  # fmt: skip


def _cli_commands() -> set[str]:
    import typer

    from workbench.cli.app import app

    def walk(command, path: str) -> set[str]:
        subs = getattr(command, "commands", None)
        if not subs:
            return {path}
        return set().union(*(walk(sub, f"{path} {name}".strip()) for name, sub in subs.items()))

    return walk(typer.main.get_command(app), "")


def test_every_command_that_takes_input_has_a_case() -> None:
    """A command added without a bad-input case fails here (or is listed in EXEMPT, with a reason)."""
    covered = {" ".join(c.args[:2]) for c in CASES + PG_CASES} | {c.args[0] for c in CASES + PG_CASES}
    commands = _cli_commands()
    missing = sorted(commands - covered - EXEMPT)
    assert not missing, f"commands with no bad-input case: {missing}"
    assert commands - covered >= EXEMPT, f"stale exemptions: {sorted(EXEMPT - (commands - covered))}"


def test_each_case_provokes_its_own_refusal(runs: dict[str, Run]) -> None:
    """No two cases of one command end in the same message: each exercises a different check."""
    seen: dict[tuple[str, str], str] = {}
    for case_id, run in runs.items():
        key = (" ".join(run.args[:2]), " ".join(run.stderr.replace(str(run.dir), "{dir}").split()))
        assert key not in seen, f"{case_id} repeats {seen.get(key)}: {key}"
        seen[key] = case_id


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: torch.full((2, d), float("nan")), r"vector\(s\) \[0, 1\] contain NaN or inf"),
        (lambda d: torch.tensor([[1.0] * (d - 1) + [float("inf")]]), r"vector\(s\) \[0\] contain NaN or inf"),
        (lambda d: torch.cat([torch.ones(1, d), torch.zeros(1, d)]), r"vector\(s\) \[1\] are all zeros"),
        (lambda d: torch.ones(3, d + 1), r"vectors must have shape \[n, 64\], got \[3, 65\]"),
        (lambda d: torch.ones(d), r"vectors must have shape \[n, 64\], got \[64\]"),
    ],
    ids=["nan", "inf", "zero", "wrong-width", "one-dimensional"],
)
def test_bad_vectors_at_the_engine(tiny_nla, make, message: str) -> None:
    """No CLI command takes raw vectors: the engine's ``explain`` is the boundary callers use."""
    engine = NLAEngine(TransformersBackend(tiny_nla("llama")))
    with pytest.raises(VectorError, match=rf"^my vectors: {message}"):
        engine.explain(
            make(engine.meta.d_model), SamplingParams(temperature=0, max_new_tokens=2), source="my vectors"
        )
