"""The campaign runner: render variants -> target transcripts -> activations -> explanations -> store.

Every stage commits per unit (a transcript, a transcript's activations, a batch of explanations)
and only does work that is missing, so a run that is interrupted (Ctrl-C, kill -9) resumes where
it stopped without losing or duplicating rows. Explanations are content-addressed by
(checkpoint, activation key, sampling key, sample index)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Protocol

import torch
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from audits.campaign_registry import load_campaign_spec
from audits.campaign_spec import CampaignSpec
from audits.discovery.terms import words
from audits.organisms.catalog import resolve_target_model
from audits.provenance import run_provenance
from audits.scenario_library import Scenario
from audits.screening import (
    LENS_TOP,
    Screen,
    campaign_counts,
    delta_scores,
    fit_screen,
    sample_positions,
    sample_rows,
    standardise,
)
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLALogitLens,
    SQLAMessage,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
    Store,
    activation_key,
    blob_to_vector,
    insert_ignore,
    json_key,
    vector_digest_of,
    vector_to_blob,
)
from audits.store.leases import CampaignLease
from audits.themes.calibration import load_calibration
from audits.themes.definitions import Theme, select_themes
from audits.themes.detectors import make_detectors
from audits.themes.pipeline import (
    ThemeJob,
    flag_transcript,
    flaggable_transcripts,
    pending_scores,
    register_themes,
    score_explanations,
)
from audits.themes.triage import theme_directions
from audits.token_selection import candidate_positions, select_tokens, triage_tokens
from audits.variants import Variant, expand_variants
from nla.activations import check_context, generate_reply, residual_streams, tokenize_transcript
from nla.checkpoint import NLA, load_nla
from nla.dtypes import torch_dtype
from nla.engine import Explanation
from nla.errors import TranscriptError
from nla.executors import EngineSpec, Executor, InProcessExecutor
from nla.logit_lens import logit_lens
from nla.pipeline import Target, load_target
from nla.sampling import SamplingParams
from nla.transcript import Message, Transcript
from nla.triage import ProbeDirection, select_top_k, triage_scores


class Stage(Protocol):
    """Progress for one stage: told its total once, then advanced as units finish."""

    def set_total(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


@dataclass
class _Silent:
    def set_total(self, total: int) -> None:
        """Ignore the total."""

    def advance(self, n: int = 1) -> None:
        """Ignore progress."""


StageFactory = Callable[[str], AbstractContextManager[Stage]]


@contextmanager
def silent_stage(name: str) -> Iterator[Stage]:
    """A stage that reports nowhere (library use, tests)."""
    yield _Silent()


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    run_id: int
    status: str
    new_explanations: int


class ModelSource(Protocol):
    """Where a run gets its loaded models (``CampaignRunner(models=...)``)."""

    def target(self, ref: str, *, adapter: str | None = None, **opts) -> Target: ...

    def nla(self, checkpoint: str, *, target_ref: str, layer: int | None, **opts) -> NLA: ...


class FreshModels:
    """Loads every model anew: the default (the CLI runs one campaign per process). The dashboard passes a
    source that keeps its models loaded between runs instead."""

    def target(self, ref: str, *, adapter: str | None = None, **opts) -> Target:
        return load_target(ref, adapter=adapter, **opts)

    def nla(self, checkpoint: str, *, target_ref: str, layer: int | None, **opts) -> NLA:
        return load_nla(checkpoint, target_ref=target_ref, layer=layer, **opts)


class LoadedOnce(FreshModels):
    """Loads each distinct model once and keeps it for the life of this object: one process that runs
    several campaigns in turn (``nla-workbench demo``) loads a target or an NLA they share only once.
    Each (model, adapter) is its own instance, so an adapter never lands on a base another arm uses."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}
        self._nlas: dict[str, NLA] = {}

    def target(self, ref: str, *, adapter: str | None = None, **opts) -> Target:
        key = json_key({"ref": ref, "adapter": None if adapter is None else str(adapter), **_keyed(opts)})
        if key not in self._targets:
            self._targets[key] = super().target(ref, adapter=adapter, **opts)
        return self._targets[key]

    def nla(self, checkpoint: str, *, target_ref: str, layer: int | None, **opts) -> NLA:
        key = json_key({"checkpoint": checkpoint, "target": target_ref, "layer": layer, **_keyed(opts)})
        if key not in self._nlas:
            self._nlas[key] = super().nla(checkpoint, target_ref=target_ref, layer=layer, **opts)
        return self._nlas[key]


def _keyed(opts: dict) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(opts.items())}


def arm_targets(spec: CampaignSpec, opts: dict, models: ModelSource | None = None) -> dict[str, Target]:
    """The loaded target of every arm (``""`` for a single-target campaign): ``organism:<name>`` resolved
    to its base and adapter, each distinct (model, adapter) loaded once."""
    models = models or FreshModels()
    loaded: dict[tuple[str, str | None], Target] = {}
    out: dict[str, Target] = {}
    for name, arm in spec.target_arms().items():
        model, adapter = resolve_target_model(arm.model, arm.adapter)
        if (model, adapter) not in loaded:
            loaded[(model, adapter)] = models.target(model, adapter=adapter, **opts)
        out[name] = loaded[(model, adapter)]
    return out


def stored_transcript(session: Session, transcript_id: int, source: str | None = None) -> Transcript:
    """A stored transcript's messages, in order."""
    messages = session.scalars(
        select(SQLAMessage)
        .where(SQLAMessage.transcript_id == transcript_id)
        .order_by(SQLAMessage.message_index)
    ).all()
    return Transcript(
        tuple(Message(m.role, m.content) for m in messages), source or f"transcript {transcript_id}"
    )


def variant_transcript(target: Target, variant: Variant, spec: CampaignSpec) -> tuple[Transcript, str]:
    """The transcript a variant yields under ``spec`` (with the target's reply when it is to reply) and its
    status: ``ok``, ``too_long`` or ``target_empty``."""
    try:
        if not variant.generate_reply:
            ids = target.tokenizer.apply_chat_template(variant.transcript.as_chat(), return_dict=False)
            check_context(target.model, len(ids), variant.key)
            return variant.transcript, "ok"
        replied = generate_reply(
            target.model, target.tokenizer, variant.transcript,
            max_new_tokens=spec.target.max_new_tokens, temperature=spec.target.temperature, seed=spec.seed,
        )  # fmt: skip
    except TranscriptError:
        return variant.transcript, "too_long"
    return replied, "ok" if replied.messages[-1].content.strip() else "target_empty"


class CampaignRunner:
    """Runs one campaign against one store.

    ``executor`` decides where explanation batches run (in-process by default); whatever it is,
    this process alone writes the store, one committed transaction per batch. ``models`` gives the run its
    loaded target(s) and NLA (loaded afresh by default)."""

    def __init__(
        self,
        store: Store,
        name: str,
        library: dict[str, Scenario],
        stage: StageFactory = silent_stage,
        executor: Executor | None = None,
        models: ModelSource | None = None,
    ):
        self.store, self.library, self.stage = store, library, stage
        self.models = models or FreshModels()
        self.executor = executor or InProcessExecutor()
        self.campaign_id, self.spec = load_campaign_spec(store, name, library)
        self.sampling = SamplingParams(
            self.spec.sampling.temperature,
            self.spec.sampling.top_p,
            self.spec.sampling.max_new_tokens,
            self.spec.seed,
        )
        self.sampling_key = json_key(self.sampling.as_dict())
        self.deadline: float | None = None
        self.timed_out = False
        self.lease = CampaignLease(store, self.campaign_id, self.spec.name)

    def run(self) -> RunResult:
        """Do all missing work; the run row records how it ended."""
        spec = self.spec
        self.lease.check_free()  # refuse a second live runner before loading any model
        started = time.monotonic()
        if spec.budgets.max_wall_seconds:
            self.deadline = started + spec.budgets.max_wall_seconds
        variants = expand_variants(spec, self.library)
        dtype = torch_dtype(spec.target.dtype)
        opts = {
            "dtype": dtype,
            "device": spec.target.device,
            "trust_remote_code": spec.target.trust_remote_code,
        }
        targets = arm_targets(spec, opts, self.models)
        target = targets[spec.control() or ""]  # the NLA's `default` and triage follow the control arm
        nla = self.models.nla(spec.nla.checkpoint, target_ref=target.ref, layer=spec.nla.layer, **opts)
        for arm_target in targets.values():  # every check passes before anything is written
            nla.check_target(arm_target.model, arm_target.identity)
        job = self._theme_job(nla)
        directions = theme_directions(target, nla, job.themes) if job else []
        if job:
            register_themes(self.store, job.themes)
        self._store_variants(variants)
        run_id = self._open_run(nla, job, targets)
        status, new = "failed", 0
        try:
            self._transcripts(targets, variants)
            self._activations(targets, variants, nla, job.themes if job else (), directions)
            new, status = self._explanations(run_id, nla)
            if self._screened():
                self._screen_and_select(run_id, targets, variants, nla, job, directions)
                more, status = self._explanations(run_id, nla)
                new += more
            if job:
                self._themes(job)
            if self.timed_out:
                status = "budget_exhausted"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self._close_run(run_id, status)
        return RunResult(run_id, status, new)

    # -- bookkeeping -------------------------------------------------------------------------
    def _store_variants(self, variants: list[Variant]) -> None:
        rows = [
            {
                "campaign_id": self.campaign_id,
                "variant_key": v.key,
                "scenario_id": v.scenario_id,
                "scenario_version": v.scenario_version,
                "is_control": v.is_control,
                "conditions_json": v.conditions,
            }  # fmt: skip
            for v in variants
        ]
        with self.store.session() as session:
            insert_ignore(session, SQLAVariant, rows)

    def _theme_job(self, nla: NLA) -> ThemeJob | None:
        """Themes, detectors and calibrated thresholds, all checked before anything is written."""
        if not self.spec.themes:
            return None
        themes = tuple(select_themes(self.spec.themes))
        calibration = load_calibration()
        detectors = make_detectors(self.spec.detectors)
        thresholds = {t.id: calibration.thresholds([d.key for d in detectors], t) for t in themes}
        return ThemeJob(
            self.campaign_id, nla.id, self.sampling_key, self.spec.sampling.samples, self.spec.target.model,
            nla.meta.layer, themes, detectors, thresholds,
        )  # fmt: skip

    def _open_run(self, nla: NLA, job: ThemeJob | None, targets: dict[str, Target]) -> int:
        themes = {t.key: t.content_hash() for t in job.themes} if job else {}
        arms = {
            name: {
                "model": arm.model, "base": targets[name].ref, "identity": targets[name].identity,
                "adapter": None if targets[name].adapter is None else str(targets[name].adapter.path),
                "adapter_sha256": None if targets[name].adapter is None else targets[name].adapter.digest,
                "reads": arm.reads,
            }
            for name, arm in self.spec.target_arms().items()
        }  # fmt: skip
        provenance = run_provenance(
            spec=self.spec.model_dump(mode="json"), spec_hash=self.spec.spec_hash(), seed=self.spec.seed,
            target=self.spec.target.model, checkpoint_id=nla.id, nla_meta=_meta_dict(nla),
            sampling=self.sampling.as_dict(), sampling_key=self.sampling_key, themes=themes,
            detectors=[d.key for d in job.detectors] if job else [], thresholds=job.thresholds if job else {},
            arms=arms, control_arm=self.spec.control(), nla_target=targets[self.spec.control() or ""].identity,
        )  # fmt: skip
        with self.store.session() as session:
            self.lease.acquire(session)  # one live runner per campaign; a dead one's runs -> interrupted
            run = SQLARun(
                campaign_id=self.campaign_id, provenance_json=provenance, executor=self.executor.name
            )
            session.add(run)
            session.flush()
            self.lease.attach(session, run.id)
            self.stage = self.lease.beating(self.stage)  # stages heartbeat the lease as they advance
            return run.id

    def _close_run(self, run_id: int, status: str) -> None:
        with self.store.session() as session:
            if self.lease.release(session):  # else taken over: the taker marked the run interrupted
                run = session.get(SQLARun, run_id)
                run.status, run.finished_at = status, datetime.now(UTC)

    def _out_of_time(self) -> bool:
        """True once the wall-time budget is spent (remembered, so the run ends as budget_exhausted)."""
        self.timed_out = self.timed_out or (self.deadline is not None and time.monotonic() > self.deadline)
        return self.timed_out

    # -- stage 1: transcripts ----------------------------------------------------------------
    def _transcripts(self, targets: dict[str, Target], variants: list[Variant]) -> None:
        by_key = {v.key: v for v in variants}
        with self.store.session() as session:
            todo = session.execute(
                select(SQLAVariant.id, SQLAVariant.variant_key)
                .where(SQLAVariant.campaign_id == self.campaign_id)
                .where(~exists().where(SQLATranscript.variant_id == SQLAVariant.id))
                .order_by(SQLAVariant.id)
            ).all()
        # arms that write their transcripts go first, so a reading arm finds its source's text
        todo = sorted(todo, key=lambda row: (by_key[row[1]].reads is not None, row[0]))
        with self.stage("transcripts") as stage:
            stage.set_total(len(todo))
            for variant_id, key in todo:
                if self._out_of_time():
                    return
                variant = by_key[key]
                if variant.reads is not None:
                    read = self._read_transcript(variant.reads)
                    if read is not None:  # else its source stopped first (a budget): done on resume
                        self._store_transcript(variant_id, *read, "read")
                else:
                    transcript, status = variant_transcript(targets[variant.arm], variant, self.spec)
                    source = "generated" if variant.generate_reply else "given"
                    self._store_transcript(variant_id, transcript, status, source)
                stage.advance(1)

    def _read_transcript(self, source_key: str) -> tuple[Transcript, str] | None:
        """The transcript (and status) of the variant ``source_key``, for an arm that reads it."""
        with self.store.session() as session:
            row = session.execute(
                select(SQLATranscript.id, SQLATranscript.status)
                .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
                .where(SQLAVariant.campaign_id == self.campaign_id, SQLAVariant.variant_key == source_key)
            ).one_or_none()
            if row is None:
                return None
            return stored_transcript(session, row.id, source_key), row.status

    def _store_transcript(self, variant_id: int, transcript: Transcript, status: str, source: str) -> None:
        with self.store.session() as session:
            row = SQLATranscript(variant_id=variant_id, source=source, status=status)
            session.add(row)
            session.flush()
            session.add_all(
                SQLAMessage(transcript_id=row.id, message_index=i, role=m.role, content=m.content)
                for i, m in enumerate(transcript.messages)
            )

    # -- stage 2: activations (and triage) ----------------------------------------------------
    def _activations(
        self,
        targets: dict[str, Target],
        variants: list[Variant],
        nla: NLA,
        themes: Sequence[Theme],
        directions: list[ProbeDirection],
    ) -> None:
        """Activations of every transcript still without tokens; ``directions`` (one per theme) triage them."""
        with self.store.session() as session:
            todo = session.execute(
                select(SQLATranscript.id, SQLAVariant.variant_key)
                .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
                .where(SQLAVariant.campaign_id == self.campaign_id, SQLATranscript.status == "ok")
                .where(~exists().where(SQLATokenPosition.transcript_id == SQLATranscript.id))
                .order_by(SQLATranscript.id)
            ).all()
        arm_of = {v.key: v.arm for v in variants}
        with self.stage("activations") as stage:
            stage.set_total(len(todo))
            for transcript_id, variant_key in todo:
                if self._out_of_time():
                    return
                target = targets[arm_of[variant_key]]
                self._store_activations(target, nla, themes, directions, transcript_id, variant_key)
                stage.advance(1)

    def _store_activations(
        self,
        target: Target,
        nla: NLA,
        themes: Sequence[Theme],
        directions: list[ProbeDirection],
        transcript_id: int,
        variant_key: str,
    ) -> None:
        """Token rows, triage scores of every content token, the selected tokens' activations and their
        logit lens, in one transaction."""
        with self.store.session() as session:
            transcript = stored_transcript(session, transcript_id)
            tokenized = tokenize_transcript(target.tokenizer, transcript)
            content = [t.position for t in tokenized.tokens if t.in_content and not t.is_special]
            lens_layers = sorted(
                {nla.meta.layer, *self.spec.logit_lens.layers} if self.spec.logit_lens.top_k else set()
            )
            streams = residual_streams(target.model, tokenized.input_ids, [nla.meta.layer, *lens_layers])
            stream = streams[nla.meta.layer]
            scores = (
                dict(
                    zip(content, triage_scores(stream[content], directions, nla.meta.mse_scale), strict=True)
                )
                if directions and content
                else {}
            )
            if self._screened():  # verbalize the screen's training sample first (delta needs none)
                chosen = {}
                if self.spec.tokens.triage.strategy != "delta":
                    candidates = candidate_positions(tokenized.tokens, self.spec.tokens)
                    sample = sample_positions(
                        candidates, self.spec.tokens.triage.sample, self.spec.seed, variant_key
                    )
                    chosen = dict.fromkeys(sample, "triage_sample")
            elif self.spec.tokens.triage is not None:
                chosen = triage_tokens(
                    tokenized.tokens, self.spec.tokens, scores, self.spec.seed, variant_key
                )
            else:
                chosen = dict.fromkeys(select_tokens(tokenized.tokens, self.spec.tokens), "cap")
            positions = {}
            for t in tokenized.tokens:
                row = SQLATokenPosition(
                    transcript_id=transcript_id, position=t.position, token_id=t.token_id, token_text=t.text,
                    role=t.role, message_index=t.message_index, in_content=t.in_content, is_special=t.is_special,
                )  # fmt: skip
                session.add(row)
                positions[t.position] = row
            session.flush()
            session.add_all(
                SQLATriageScore(
                    token_position_id=positions[p].id,
                    checkpoint_id=nla.id,
                    theme_id=theme.id,
                    theme_version=theme.version,
                    score=float(row[j]),
                )  # fmt: skip
                for p, row in scores.items()
                for j, theme in enumerate(themes)
            )
            self._add_activations(
                session, target, nla, {p: r.id for p, r in positions.items()}, streams, chosen
            )

    def _lens_layers(self, nla: NLA) -> list[int]:
        return sorted({nla.meta.layer, *self.spec.logit_lens.layers} if self.spec.logit_lens.top_k else set())

    def _add_activations(
        self,
        session: Session,
        target: Target,
        nla: NLA,
        token_ids: dict[int, int],
        streams: dict[int, torch.Tensor],
        chosen: dict[int, str],
    ) -> None:
        """The chosen tokens' activations (position -> why chosen) and their logit lens, in ``session``."""
        stream = streams[nla.meta.layer]
        salt = target.identity if target.adapter is not None else None
        activations = {}
        for p, selection in sorted(chosen.items()):
            blob = vector_to_blob(stream[p])
            activations[p] = SQLAActivation(
                campaign_id=self.campaign_id, token_position_id=token_ids[p], model_ref=target.identity,
                layer=nla.meta.layer, activation_key=activation_key(blob, salt), d_model=nla.meta.d_model,
                norm=float(stream[p].norm()), vector=blob, selection=selection,
            )  # fmt: skip
        session.add_all(activations.values())
        session.flush()
        picked = sorted(activations)
        for layer in self._lens_layers(nla) if picked else []:
            readings = logit_lens(
                target.model, target.tokenizer, streams[layer][picked], layer, self.spec.logit_lens.top_k
            )
            session.add_all(
                SQLALogitLens(
                    activation_id=activations[p].id,
                    layer=layer,
                    token_ids=r.token_ids,
                    tokens=r.tokens,
                    logprobs=r.logprobs,
                )  # fmt: skip
                for p, r in zip(picked, readings, strict=True)
            )

    # -- stage 2b: screened triage (distilled or logit-lens screens learned from the sample) ----------------
    def _screened(self) -> bool:
        triage = self.spec.tokens.triage
        return triage is not None and triage.strategy != "directions"

    def _screen_and_select(
        self,
        run_id: int,
        targets: dict[str, Target],
        variants: list[Variant],
        nla: NLA,
        job: ThemeJob | None,
        directions: list[ProbeDirection],
    ) -> None:
        """Label the verbalized sample, fit the screens (``delta`` fits none), score every candidate token of
        the campaign and add each transcript's top-K (or its share of the campaign's top K x transcripts) and
        random tokens; transcripts already screened are left as they are."""
        triage = self.spec.tokens.triage
        if job and triage.strategy != "delta":
            with self.stage("sample theme scores") as stage:
                pending = pending_scores(self.store, job)
                stage.set_total(len(pending))
                score_explanations(self.store, job, pending, stage.advance, self._out_of_time)
        if self._out_of_time():
            return
        if triage.strategy == "delta":
            report = [{"label": "delta", "method": f"delta against arm {self.spec.control()}"}]
            screen = Screen(nla.meta.mse_scale, [], "delta", report)
        else:
            screen = fit_screen(
                self.store, self.spec.name, sample_rows(self.store, self.campaign_id), strategy=triage.strategy,
                job=job, directions=directions, control=self.spec.control(), scale=nla.meta.mse_scale,
                seed=self.spec.seed,
            )  # fmt: skip
        self._record(run_id, screening=screen.report)
        control = targets[self.spec.control() or ""]
        arm_of = {v.key: v.arm for v in variants}
        with self.store.session() as session:
            rows = session.execute(
                select(SQLATranscript.id, SQLAVariant.variant_key)
                .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
                .where(SQLAVariant.campaign_id == self.campaign_id, SQLATranscript.status == "ok")
                .where(exists().where(SQLATokenPosition.transcript_id == SQLATranscript.id))
                .order_by(SQLATranscript.id)
            ).all()
            done = set(session.scalars(
                select(SQLATokenPosition.transcript_id)
                .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
                .where(SQLAActivation.campaign_id == self.campaign_id,
                       SQLAActivation.selection.in_(["triage_top", "triage_random"]))
            ).all())  # fmt: skip
        if all(t in done for t, _ in rows):
            return
        with self.stage("screening") as stage:
            stage.set_total(len(rows))
            scored = []
            for transcript_id, key in rows:  # every transcript: the scores are standardised campaign-wide
                scored.append(
                    self._screen_transcript(screen, targets[arm_of[key]], control, nla, transcript_id)
                )
                stage.advance(1)
        raw = [s[2] for s in scored if len(s[2])]
        z = standardise(torch.cat(raw)) if raw else None
        parts, offset = [], 0
        for candidates, _, _ in scored:
            parts.append(z[offset : offset + len(candidates)] if z is not None else torch.zeros(0, 1))
            offset += len(candidates)
        counts = [triage.top_k] * len(rows)
        if triage.allocation == "campaign" and z is not None and z.shape[1]:
            counts = campaign_counts(parts, triage.top_k * len(rows))
        for (transcript_id, key), (candidates, streams, _), part, k in zip(
            rows, scored, parts, counts, strict=True
        ):
            if transcript_id in done or not candidates or self._out_of_time():
                continue
            if part.shape[1]:
                top, extra = select_top_k(part, k, triage.random, self.spec.seed, key)
                chosen = {
                    **{candidates[i]: "triage_top" for i in top},
                    **{candidates[i]: "triage_random" for i in extra},
                }
            else:  # nothing could be learned from the sample: pick the rest at random (the report says so)
                _, extra = select_top_k(
                    torch.zeros(len(candidates), 1), 0, triage.top_k + triage.random, self.spec.seed, key
                )
                chosen = {candidates[i]: "triage_random" for i in extra}
            with self.store.session() as session:
                token_ids = dict(session.execute(
                    select(SQLATokenPosition.position, SQLATokenPosition.id)
                    .where(SQLATokenPosition.transcript_id == transcript_id)
                ).all())  # fmt: skip
                self._add_activations(session, targets[arm_of[key]], nla, token_ids, streams, chosen)

    def _screen_transcript(
        self, screen: Screen, target: Target, control: Target, nla: NLA, transcript_id: int
    ) -> tuple[list[int], dict[int, torch.Tensor], torch.Tensor]:
        """A transcript's unsampled candidate positions, its residual streams and their raw screen scores
        (``delta``: against ``control``'s model reading the same transcript)."""
        with self.store.session() as session:
            transcript = stored_transcript(session, transcript_id)
            sampled = set(session.scalars(  # the sample only, so a resumed run scores the same candidates
                select(SQLATokenPosition.position)
                .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
                .where(SQLATokenPosition.transcript_id == transcript_id, SQLAActivation.selection == "triage_sample")
            ).all())  # fmt: skip
        tokenized = tokenize_transcript(target.tokenizer, transcript)
        candidates = [p for p in candidate_positions(tokenized.tokens, self.spec.tokens) if p not in sampled]
        streams = residual_streams(
            target.model, tokenized.input_ids, [nla.meta.layer, *self._lens_layers(nla)]
        )
        vectors = streams[nla.meta.layer][candidates]
        if screen.strategy == "delta":
            if target.identity == control.identity:
                return candidates, streams, torch.zeros(len(candidates), 1)
            base = residual_streams(control.model, tokenized.input_ids, [nla.meta.layer])[nla.meta.layer]
            return candidates, streams, delta_scores(vectors, base[candidates], nla.meta.mse_scale)
        lens_logprobs, lens_words = None, []
        if screen.strategy == "lens" and candidates:
            readings = logit_lens(target.model, target.tokenizer, vectors, nla.meta.layer, LENS_TOP)
            lens_logprobs = torch.tensor([r.logprobs for r in readings])
            lens_words = [[words(t) for t in r.tokens] for r in readings]
        return candidates, streams, screen.raw_scores(vectors, lens_logprobs, lens_words)

    def _record(self, run_id: int, **extra: object) -> None:
        """Add to a run's provenance."""
        with self.store.session() as session:
            run = session.get(SQLARun, run_id)
            run.provenance_json = {**run.provenance_json, **extra}

    # -- stage 3: explanations ---------------------------------------------------------------
    def _pending_vectors(self, nla: NLA) -> tuple[list[tuple[str, bytes]], int]:
        """Distinct activations still missing samples, and how many distinct ones are already done."""
        samples = self.spec.sampling.samples
        with self.store.session() as session:
            activations = session.execute(
                select(SQLAActivation.activation_key, SQLAActivation.vector)
                .where(SQLAActivation.campaign_id == self.campaign_id, SQLAActivation.layer == nla.meta.layer)
                .order_by(SQLAActivation.id)
            ).all()
            done = session.execute(
                select(SQLAExplanation.activation_key, SQLAExplanation.sample_index).where(
                    SQLAExplanation.checkpoint_id == nla.id, SQLAExplanation.sampling_key == self.sampling_key
                )
            ).all()
        have: dict[str, int] = {}
        for key, _ in done:
            have[key] = have.get(key, 0) + 1
        distinct = dict(activations)  # identical vectors (e.g. a shared system prompt) are explained once
        pending = [(k, v) for k, v in distinct.items() if have.get(k, 0) < samples]
        return pending, sum(1 for k in distinct if have.get(k, 0) >= samples)

    def _explanations(self, run_id: int, nla: NLA) -> tuple[int, str]:
        pending, done = self._pending_vectors(nla)
        status = "completed"
        cap = self.spec.budgets.max_vectors
        if cap is not None and done + len(pending) > cap:
            pending, status = pending[: max(cap - done, 0)], "budget_exhausted"
        samples, new = self.spec.sampling.samples, 0
        keys_of: dict[
            str, list[str]
        ] = {}  # vector digest -> activation keys (one unless arms share a vector)
        unique: dict[str, bytes] = {}
        for key, blob in pending:
            digest = vector_digest_of(blob)
            keys_of.setdefault(digest, []).append(key)
            unique.setdefault(digest, blob)
        with self.stage("explanations") as stage:
            stage.set_total(len(unique) * samples)
            if unique:
                self.executor.start(self._engine_spec(), nla)
                batches = self._batches(list(unique.items()), nla.meta.d_model)
                for result in self.executor.explain(batches, self.sampling, samples, stage.advance):
                    rows = [
                        _explanation_row(run_id, nla.id, self.sampling_key, key, r, result.seconds_each)
                        for r in result.explanations
                        for key in keys_of[r.vector_digest]
                    ]
                    with self.store.session() as session:
                        new += insert_ignore(session, SQLAExplanation, rows)
        return new, status

    def _engine_spec(self) -> EngineSpec:
        target, nla = self.spec.target, self.spec.nla
        return EngineSpec(
            nla.checkpoint, target.model, nla.layer, torch_dtype(target.dtype), target.device,
            target.trust_remote_code, nla.batch_size,
        )  # fmt: skip

    def _batches(self, pending: list[tuple[str, bytes]], d_model: int) -> Iterator[torch.Tensor]:
        """Vector batches of the spec's batch size, until the wall-time budget is spent."""
        batch = self.spec.nla.batch_size
        for start in range(0, len(pending), batch):
            if self._out_of_time():
                return
            chunk = pending[start : start + batch]
            yield torch.stack([torch.from_numpy(blob_to_vector(b, d_model)) for _, b in chunk])

    # -- stage 4 and 5: theme scores and flags -----------------------------------------------
    def _themes(self, job: ThemeJob) -> None:
        pending = pending_scores(self.store, job)
        with self.stage("theme scores") as stage:
            stage.set_total(len(pending))
            score_explanations(self.store, job, pending, stage.advance, self._out_of_time)
        todo = flaggable_transcripts(self.store, job)
        with self.stage("flags") as stage:
            stage.set_total(len(todo))
            for transcript_id in todo:
                if self._out_of_time():
                    return
                flag_transcript(self.store, job, transcript_id)
                stage.advance(1)


def _explanation_row(
    run_id: int, checkpoint_id: str, sampling_key: str, key: str, r: Explanation, seconds: float
) -> dict:
    return {
        "run_id": run_id, "checkpoint_id": checkpoint_id, "activation_key": key,
        "sampling_key": sampling_key, "sample_index": r.sample_index, "text": r.text, "raw_output": r.raw,
        "status": str(r.status), "finish": r.finish, "n_tokens": r.n_tokens, "cos": r.cos, "mse": r.mse,
        "fve": r.fve, "generation_seconds": seconds,
    }  # fmt: skip


def _meta_dict(nla: NLA) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(nla.meta).items()}
