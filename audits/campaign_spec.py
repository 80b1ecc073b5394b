"""The campaign spec: what an audit runs, as pydantic models loadable from YAML or built in Python."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from audits.errors import SpecError
from audits.organisms.catalog import ORGANISM_PREFIX, get_organism
from audits.scenario_library import Scenario, select
from audits.store.keys import json_key
from audits.themes.definitions import check_theme_ids
from audits.yaml_source import describe_errors, load_model, load_model_text
from nla.resolve import DEFAULT_TARGET

ARM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def _check_model_ref(model: str) -> str:
    """An ``organism:<name>`` reference must name a shipped organism."""
    if model.startswith(ORGANISM_PREFIX):
        get_organism(model[len(ORGANISM_PREFIX) :])
    return model


class _Spec(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` in a float field is a field error naming its line, never a
    # spec that later fails to serialise
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)

    _OMIT_AT_DEFAULT: ClassVar[tuple[str, ...]] = ()
    """Fields added after specs were first stored: left out of the dump while they hold their default, so
    a spec written before they existed keeps its hash."""

    @model_serializer(mode="wrap")
    def _without_new_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in self._OMIT_AT_DEFAULT:
            if getattr(self, name) == type(self).model_fields[name].get_default(call_default_factory=True):
                data.pop(name, None)
        return data


# Bounds that catch typos and absurd values (1e26 vectors, 1e308 seconds) rather than limit real use.
MAX_TEMPERATURE = 10.0
MAX_VECTORS = 1_000_000_000
MAX_WALL_SECONDS = 31 * 24 * 3600


class TargetSpec(_Spec):
    """The model under audit and how its replies are obtained."""

    _OMIT_AT_DEFAULT = ("adapter",)

    model: str = DEFAULT_TARGET
    """Model reference: local directory, Hub id, ``embedded:<name>``, or ``organism:<name>`` (a shipped
    model organism: its base model plus its adapter)."""
    adapter: str | None = None
    """A peft (LoRA) adapter applied on the model: a local directory (or a Hub id where a hub is
    reachable). Its content hash enters the target's identity, so rows of the base and of the fine-tune
    never mix."""
    replies: Literal["scenario", "generate"] = "scenario"
    """``scenario``: as each scenario says (given or generated); ``generate``: always let the target
    write the final assistant turn (a given reply is dropped first)."""
    max_new_tokens: int = Field(96, ge=1, le=2048)
    """Length cap of a generated reply, in tokens."""
    temperature: float = Field(0.0, ge=0, le=MAX_TEMPERATURE)
    """Sampling temperature of generated replies; 0 is greedy."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype for the target and the NLA."""
    device: str = "cpu"
    """Torch device, e.g. ``cpu`` or ``cuda``."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own code."""

    @field_validator("model")
    @classmethod
    def _known_organism(cls, model: str) -> str:
        return _check_model_ref(model)

    @model_validator(mode="after")
    def _adapter_not_twice(self) -> TargetSpec:
        if self.adapter is not None and self.model.startswith(ORGANISM_PREFIX):
            raise ValueError(
                f"target {self.model!r} already carries its adapter; do not give `adapter` as well"
            )
        return self


class ArmSpec(_Spec):
    """One target arm: a model (optionally with an adapter) run over every variant of the campaign, or
    reading another arm's transcripts."""

    model: str
    """Model reference, as in ``target.model`` (``organism:<name>`` included)."""
    adapter: str | None = None
    """A peft adapter applied on the model, as in ``target.adapter``."""
    reads: str | None = None
    """Another arm whose transcripts this arm reads instead of writing its own: its model is
    teacher-forced on that arm's text (the base reading a fine-tune's replies), the same-text control that
    separates what a model holds from what its text says."""

    @field_validator("model")
    @classmethod
    def _known_organism(cls, model: str) -> str:
        return _check_model_ref(model)

    @model_validator(mode="after")
    def _adapter_not_twice(self) -> ArmSpec:
        if self.adapter is not None and self.model.startswith(ORGANISM_PREFIX):
            raise ValueError(
                f"arm model {self.model!r} already carries its adapter; do not give `adapter` as well"
            )
        return self


class LogitLensSpec(_Spec):
    """The logit lens stored beside every selected token: its activation read through the target's final
    norm and unembedding (an independent check on each explanation; no NLA involved)."""

    top_k: int = Field(10, ge=0, le=100)
    """Top tokens kept per activation; 0 turns the lens off."""
    layers: list[Annotated[int, Field(ge=0)]] = []
    """Further layers to read the same tokens at, besides the NLA's layer."""


class NLASpec(_Spec):
    """The NLA that explains the target's activations."""

    checkpoint: str = "default"
    """An NLA directory (av/ + ar/), a Hub id prefix, ``default`` (the newest bundled trained NLA for the
    target where one ships, else ``init``), ``default@vN`` (one bundled version) or ``init[:LAYER]``
    (untrained)."""
    layer: int | None = Field(None, ge=0)
    """Layer for an ``init`` NLA; other checkpoints carry their own."""
    batch_size: int = Field(64, ge=1)
    """Vectors per verbalizer batch."""


class ScenarioSelection(_Spec):
    """Which scenarios run: library ids and tags, plus scenarios written inline."""

    ids: list[str] = []
    """Library scenario ids."""
    tags: list[str] = []
    """Library tags; every scenario with any of them is included."""
    inline: list[Scenario] = []
    """Scenarios defined in the campaign file itself."""
    controls: bool = True
    """Run each scenario's paired control beside it."""


class TriageSelection(_Spec):
    """Verbalize only the tokens a cheap screen ranks highest, plus a random sample of the rest so that
    what the screen misses stays measurable."""

    _OMIT_AT_DEFAULT = ("strategy", "sample", "allocation")

    strategy: Literal["directions", "distilled", "lens", "delta"] = "directions"
    """``directions``: project on AR-reversed theme directions (needs themes). ``distilled``: verbalize a
    seeded random ``sample`` of tokens first, fit a logistic-regression probe per theme (its detectors' hits)
    and per term discovered in the sample (arms against the control arm), then screen every token with
    them; a theme the sample gives too few positives falls back to its direction. ``lens``: the same
    sample, then screen by the labels' words among each token's logit-lens top tokens. ``delta`` (needs
    target arms; no sample): how far each token's activation moves from the control arm's model reading
    the same transcript, teacher-forced (where a fine-tune's state departs from its base's on the same
    text); 0 on the control arm's own transcripts."""
    top_k: int = Field(8, ge=1)
    """Candidate tokens per transcript with the highest screening score (max over the labels); with
    ``allocation: campaign``, per transcript on average."""
    allocation: Literal["transcript", "campaign"] = "transcript"
    """``transcript``: every transcript gets its own ``top_k``. ``campaign``: the campaign's ``top_k`` x
    transcripts highest-scoring tokens wherever they are, so a transcript may get many or none (the
    ``random`` share stays per transcript)."""
    random: int = Field(2, ge=0)
    """Further candidates per transcript drawn at random (seeded) from the rest."""
    sample: float = Field(0.04, gt=0, le=0.5)
    """``distilled`` / ``lens``: share of each transcript's candidate tokens verbalized first (at least
    one), the screen's training sample; it counts towards what is verbalized."""


class TokenSelection(_Spec):
    """Which token positions of each transcript are explained."""

    _OMIT_AT_DEFAULT = ("positions", "reply_header")

    roles: list[Literal["system", "user", "assistant"]] = ["assistant"]
    """Content tokens of these roles are candidates."""
    stride: int = Field(1, ge=1)
    """Keep every n-th candidate."""
    max_per_transcript: int | None = Field(64, ge=1)
    """Cap per transcript (evenly spaced over the candidates); null for no cap. Ignored under triage."""
    triage: TriageSelection | None = None
    """When set, triage picks the tokens to verbalize instead of the even cap (needs ``themes``)."""
    reply_header: bool = False
    """Also verbalize the non-special template tokens that open an assistant turn (e.g. ``assistant`` and
    the newline after it): where the model has read the prompt but not yet written anything."""
    positions: list[Annotated[int, Field(ge=0)]] | None = Field(None, min_length=1)
    """Explicit positions of the templated transcript to verbalize (as picked on the dashboard's Explore
    page); when set, roles, stride and the cap are not used, and positions past a transcript's end are
    skipped."""

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> TokenSelection:
        if self.positions is not None and self.triage is not None:
            raise ValueError("tokens.positions and tokens.triage each choose the tokens: give one of them")
        return self


class SamplingSpec(_Spec):
    """How explanations are sampled."""

    samples: int = Field(2, ge=1, le=32)
    """Explanations per activation (agreement across samples is evidence)."""
    temperature: float = Field(1.0, ge=0, le=MAX_TEMPERATURE)
    """Sampling temperature; 0 is greedy."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(72, ge=1, le=512)
    """Explanation length cap, in tokens (the bundled SmolLM2 NLA writes ~60)."""


class Budgets(_Spec):
    """Limits after which the runner stops scheduling and keeps a valid partial result."""

    max_vectors: int | None = Field(None, ge=1, le=MAX_VECTORS)
    """Most activations to verbalize in the campaign (at most a billion: leave it out for no limit)."""
    max_wall_seconds: float | None = Field(None, gt=0, le=MAX_WALL_SECONDS)
    """Most wall-clock seconds per run (at most 31 days: leave it out for no limit)."""


class CampaignSpec(_Spec):
    """An audit campaign: target, NLA, scenarios and conditions, token selection, sampling, budgets."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    """Short unique name (lower-case letters, digits, ``-`` and ``_``)."""
    description: str = ""
    """What the campaign is for."""
    _OMIT_AT_DEFAULT = ("arms", "control_arm", "logit_lens")

    target: TargetSpec = TargetSpec()
    """The model under audit; with ``arms``, only its shared settings (replies, lengths, dtype, device)."""
    arms: dict[str, ArmSpec] = {}
    """Several targets run over the same variants (a fine-tune and its base, two checkpoints), by arm name;
    each arm is a cell of the factorial grid like a condition (slot ``arm``). Empty: one target."""
    control_arm: str | None = None
    """The arm the others are compared against (discovery, the Compare page); default: the first arm of
    a plain model (no adapter, no organism) with its own transcripts, else the first plain model reading
    another arm's (the same-text control), else the first arm."""
    logit_lens: LogitLensSpec = LogitLensSpec()
    """The logit lens stored beside every selected token."""
    nla: NLASpec = NLASpec()
    """The NLA used to explain activations."""
    scenarios: ScenarioSelection
    """The scenarios to run."""
    conditions: dict[str, list[str]] = {}
    """Factorial grid: slot name -> condition values to run (default: every value a scenario declares)."""
    tokens: TokenSelection = TokenSelection()
    """Token positions to explain."""
    sampling: SamplingSpec = SamplingSpec()
    """Explanation sampling."""
    themes: list[str] = []
    """Audit theme ids to score explanations for and flag (``audits/themes/data``)."""
    detectors: list[Literal["lexicon", "semantic"]] = Field(["lexicon", "semantic"], min_length=1)
    """Detectors whose scores flag an explanation (any of them reaching its calibrated threshold)."""
    budgets: Budgets = Budgets()
    """Stopping limits."""
    seed: int = Field(0, ge=0, lt=2**63)
    """Seed for reply generation and explanation sampling."""

    @field_validator("themes")
    @classmethod
    def _known_themes(cls, themes: list[str]) -> list[str]:
        check_theme_ids(themes)
        return themes

    @field_validator("scenarios")
    @classmethod
    def _scenarios_exist(cls, selection: ScenarioSelection, info: ValidationInfo) -> ScenarioSelection:
        library = (info.context or {}).get("library")
        if library is not None:
            selected_scenarios(selection, library)
        return selection

    @field_validator("conditions")
    @classmethod
    def _conditions_exist(
        cls, conditions: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        library = (info.context or {}).get("library")
        selection = info.data.get("scenarios")
        if library is not None and selection is not None:
            check_conditions(conditions, selected_scenarios(selection, library))
        return conditions

    @field_validator("arms")
    @classmethod
    def _arms_make_sense(cls, arms: dict[str, ArmSpec]) -> dict[str, ArmSpec]:
        for name, arm in arms.items():
            if not ARM_NAME.fullmatch(name):
                raise ValueError(f"arm name {name!r} must be lower-case letters, digits, '-' and '_'")
            if arm.reads is not None:
                if arm.reads not in arms:
                    raise ValueError(
                        f"arm {name!r} reads {arm.reads!r}, which is not an arm; arms: {sorted(arms)}"
                    )
                if arms[arm.reads].reads is not None:
                    raise ValueError(f"arm {name!r} reads {arm.reads!r}, which itself reads another arm")
        if arms and all(arm.reads is not None for arm in arms.values()):
            raise ValueError("at least one arm must write its own transcripts (no `reads`)")
        if len(arms) == 1:
            raise ValueError("give two or more arms (one target needs no `arms`: use `target`)")
        return arms

    @model_validator(mode="after")
    def _arms_fit(self) -> CampaignSpec:
        if self.control_arm is not None and self.control_arm not in self.arms:
            raise ValueError(
                f"control_arm {self.control_arm!r} is not an arm; arms: {sorted(self.arms) or 'none'}"
            )
        if self.arms and (self.target.model != DEFAULT_TARGET or self.target.adapter is not None):
            raise ValueError(
                "with `arms`, give each arm's model under arms, not target.model / target.adapter"
            )
        if self.arms and "arm" in self.conditions:
            raise ValueError("`arm` is the slot of the target arms; a condition slot may not be called arm")
        return self

    @model_validator(mode="after")
    def _triage_needs_themes(self) -> CampaignSpec:
        triage = self.tokens.triage
        if triage is not None and triage.strategy == "delta" and not self.arms:
            raise ValueError(
                "tokens.triage delta compares each arm with the control arm's model reading the same "
                "transcript: give the campaign target arms"
            )
        if triage is None or self.themes:
            return self
        if triage.strategy == "directions":
            raise ValueError("tokens.triage ranks tokens by theme: give the campaign some themes")
        if not self.arms and not self.scenarios.controls:
            raise ValueError(
                f"tokens.triage {triage.strategy} learns what to screen for from themes or from terms discovered "
                "between arms: give the campaign themes, target arms or scenario controls"
            )
        return self

    def target_arms(self) -> dict[str, ArmSpec]:
        """The arms to run, readers last; one unnamed arm (``""``) for a single-target campaign."""
        if not self.arms:
            return {"": ArmSpec(model=self.target.model, adapter=self.target.adapter)}
        return dict(sorted(self.arms.items(), key=lambda item: item[1].reads is not None))

    def control(self) -> str | None:
        """The control arm (None for a single-target campaign)."""
        if not self.arms:
            return None
        if self.control_arm is not None:
            return self.control_arm
        base = [
            n for n, a in self.arms.items() if a.adapter is None and not a.model.startswith(ORGANISM_PREFIX)
        ]
        own = [n for n in base if self.arms[n].reads is None]  # a plain model with its own transcripts first,
        return (own or base or list(self.arms))[0]  # then one reading another arm's (the same-text control)

    def spec_hash(self) -> str:
        """sha256 of the spec's canonical JSON: equal specs, equal hashes."""
        return json_key(self.model_dump(mode="json"))


def selected_scenarios(selection: ScenarioSelection, library: dict[str, Scenario]) -> list[Scenario]:
    """Library scenarios named by ids or tags, then the inline ones; never empty."""
    named = select(library, selection.ids, selection.tags) if (selection.ids or selection.tags) else []
    clash = sorted({s.id for s in selection.inline} & set(library))
    if clash:
        raise ValueError(f"inline scenario id(s) {clash} collide with library scenarios")
    scenarios = [*named, *selection.inline]
    if not scenarios:
        raise ValueError("selects nothing: give library ids, tags, or inline scenarios")
    return scenarios


def check_conditions(conditions: dict[str, list[str]], scenarios: list[Scenario]) -> None:
    """Every condition slot belongs to a selected scenario, every value to that slot."""
    declared: dict[str, set[str]] = {}
    for scenario in scenarios:
        for slot, values in scenario.conditions.items():
            declared.setdefault(slot, set()).update(values)
    for slot, values in conditions.items():
        if slot not in declared:
            raise ValueError(
                f"condition {slot!r} is not a slot of any selected scenario; valid: {sorted(declared)}"
            )
        unknown = sorted(set(values) - declared[slot])
        if unknown:
            raise ValueError(f"condition {slot}: unknown value(s) {unknown}; valid: {sorted(declared[slot])}")
        if not values:
            raise ValueError(f"condition {slot}: give at least one value")


def load_campaign(path: Path, library: dict[str, Scenario]) -> CampaignSpec:
    """Read and fully validate a campaign YAML file against the scenario library."""
    return load_model(Path(path), CampaignSpec, library=library)


def load_campaign_text(text: str, name: str, library: dict[str, Scenario]) -> CampaignSpec:
    """Validate campaign YAML given as text (an upload named ``name``) with the same checks and messages."""
    return load_model_text(text, name, CampaignSpec, library=library)


def campaign_from_dict(
    data: dict[str, Any], library: dict[str, Scenario], where: str = "<campaign>"
) -> CampaignSpec:
    """Validate a campaign given as a Python dict (the same checks as a YAML file); ``where`` names it
    in messages."""
    try:
        return CampaignSpec.model_validate(data, context={"library": library})
    except ValidationError as exc:
        raise SpecError(describe_errors(Path(where), exc, {})) from exc
