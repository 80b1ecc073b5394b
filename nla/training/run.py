"""A training run directory: its settings (``run.yaml``) and where every stage reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from nla.errors import NLAError

SPLITS = ("av_sft", "ar_sft", "rl", "eval")
"""The corpus's splits, cut by document with ``split_fractions``."""
AUDIT_EVAL = "eval_audit"
"""The held-out audit-style chats (their own family of roles and tasks, see ``audit_chats``)."""
ALL_SPLITS = (*SPLITS, AUDIT_EVAL)
TEACHER_SPLITS = ("av_sft", "ar_sft", "eval", AUDIT_EVAL)
EVAL_SPLITS = ("eval", AUDIT_EVAL)
"""What ``train eval`` scores: the corpus's held-out documents and the held-out audit chats."""


class RunSettings(BaseModel):
    """What ``datagen`` was asked to build; later stages read it back."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    target: str
    """The model whose activations are explained (embedded alias, local path or Hub id); with ``adapter``,
    the base model the adapter applies to."""
    adapter: str | None = None
    """A peft (LoRA) adapter directory merged into ``target``: the NLA is trained on that fine-tune (a model
    organism, say), reading its activations through every stage. The corpus text, chat replies included, is
    the base model's, so the NLA never trains on text the fine-tune wrote (which may spell out what it was
    trained to hide); only the activations differ from a run on the base."""
    adapter_digest: str | None = None
    """sha256 of the adapter's files, recorded by ``datagen``: a run is never continued over another
    fine-tune."""
    layer: int = Field(ge=0)
    """K: activations are the residual stream after decoder block K."""
    corpus: str = "builtin"
    """``builtin`` or a path to the user's documents."""
    prose_docs: int = Field(default=300, ge=0)
    """Built-in corpus: number of prose documents."""
    chat_docs: int = Field(default=300, ge=0)
    """Built-in corpus: number of chats the target answers."""
    audit_docs: int = Field(default=0, ge=0)
    """Built-in corpus: audit-style chats (system prompt with a role and goal, emails, tool results,
    evaluation and deployment framings) the target answers, from the training family of roles and tasks."""
    audit_eval_docs: int = Field(default=60, ge=0)
    """Held-out audit-style chats (the other family of roles and tasks) for the ``eval_audit`` split,
    whatever the corpus; never trained on."""
    positions_per_doc: int = Field(default=6, ge=1)
    """Activations sampled per document (fewer when it has fewer eligible tokens)."""
    min_position: int = Field(default=24, ge=1)
    """Earliest token position sampled (early positions carry little context)."""
    max_tokens: int = Field(default=256, ge=8)
    """Documents are truncated to this many tokens."""
    reply_tokens: int = Field(default=96, ge=1)
    """Length cap of the target's chat replies."""
    split_fractions: tuple[float, float, float, float] = (0.35, 0.35, 0.15, 0.15)
    """Document shares for AV-SFT, AR-SFT, RL and held-out eval."""
    seed: int = 0
    """Seeds the corpus choice, positions (per document) and the split."""
    held_out_of: str | None = None
    """Another run directory whose held-out corpus documents (its ``eval`` split) this run leaves out of
    its corpus, so both runs' NLAs can be scored on the same data no one trained on."""


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / "run.yaml"

    @property
    def init(self) -> Path:
        """The untrained NLA (marker, templates, injection scale) training starts from."""
        return self.root / "init"

    @property
    def merged_target(self) -> Path:
        """The target with the run's adapter merged in (safetensors, saved by ``datagen``; adapter runs only)."""
        return self.root / "target"

    def model_ref(self, settings: RunSettings) -> str:
        """The model every stage loads: ``settings.target``, or for an adapter run the merged fine-tune
        ``datagen`` saved (an absolute path, as a compact checkpoint records it)."""
        if settings.adapter is None:
            return settings.target
        if not (self.merged_target / "config.json").is_file():
            raise NLAError(
                f"{self.root}: the merged fine-tune is missing; run `nla-workbench train datagen --out {self.root}` "
                "again to rebuild it"
            )
        return str(self.merged_target.resolve())

    @property
    def chunks(self) -> Path:
        return self.root / "data" / "chunks"

    def split(self, name: str) -> Path:
        """Activations of one split."""
        return self.root / "data" / f"{name}.parquet"

    def has_split(self, name: str) -> bool:
        """Whether datagen wrote this split (runs made before ``eval_audit`` existed lack it)."""
        return self.split(name).is_file()

    def explained(self, name: str) -> Path:
        """One split with its teacher explanations."""
        return self.root / "explain" / f"{name}.parquet"

    def stage(self, name: str) -> Path:
        return self.root / name

    def settings(self) -> RunSettings:
        """The run's settings; a clear error when ``datagen`` has not run here."""
        if not self.settings_file.is_file():
            raise NLAError(
                f"{self.root} is not a training run: run `nla-workbench train datagen --out {self.root}` first"
            )
        return RunSettings.model_validate(yaml.safe_load(self.settings_file.read_text("utf-8")))

    def write_settings(self, settings: RunSettings) -> None:
        """Record the settings, refusing to continue a run made with different ones."""
        if self.settings_file.is_file():
            old = self.settings()
            if old != settings:
                changed = sorted(
                    k for k in RunSettings.model_fields if getattr(old, k) != getattr(settings, k)
                )
                raise NLAError(
                    f"{self.root} was generated with different settings ({', '.join(changed)}); "
                    "use a new --out directory or the original settings to resume"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        data = settings.model_dump(mode="json")
        self.settings_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
