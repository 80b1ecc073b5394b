"""Triage against exhaustive verbalization on the demo (starter) campaign.

Runs the starter campaign with every assistant token verbalized (no cap), which also stores every
token's triage score, then asks: had we verbalized only the triage top-K tokens per transcript, how
many of the flags that exhaustive verbalization raised would we have kept? Prints the cost of
triage per token against verbalizing it (target <= 1/100), the recall curve over K with the saving
each K gives and a random-selection baseline, and the recall at the K that gives a 10x saving
(target >= 0.9). Run it with::

    .venv/bin/python benchmarks/triage.py [--db triage-bench.db] [--checkpoint default]
    .venv/bin/python benchmarks/triage.py --strategies directions distilled lens [--organism taboo-a taboo-b ...]
    .venv/bin/python benchmarks/triage.py --strategies directions distilled lens --organism framing-a --no-starter
    .venv/bin/python benchmarks/triage.py --strategies delta distilled lens --organism taboo-a --no-starter \
        --allocation transcript campaign [--rounds 1 2]

With ``--strategies`` it also replays the screened strategies (``benchmarks/screening.py``) on the same
exhaustive campaign, and with ``--organism`` on an exhaustive organism-against-base campaign per organism too, where what
must be kept is the organism's tokens whose explanations name an answer-key term. Each strategy gets its
recall curve over the verbalized fraction (its training sample included), the recall at the 10x point with
a Wilson interval against the random baseline, and its screening cost per token against verbalizing one.
``--allocation campaign`` replays the runner's campaign-wide budget (``tokens.triage.allocation``);
``--rounds 2`` is an experiment the runner does not run (the screens fitted again halfway through K).

``default`` is the bundled trained NLA for the starter's target and layer (``init`` where none
ships). With the untrained ``init`` NLA the flags themselves are noise (its explanations carry no
information about the activations), so recall near the random baseline is the expected, honest
result; the script says which NLA it measured. A reused store may hold other campaigns: only the
``triage-bench`` campaign's tokens, flags and explanations are counted (another ``--checkpoint``
needs another store, since a campaign's spec cannot change).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from sqlalchemy import Select, func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import CampaignSpec, load_campaign
from audits.campaign_status import campaign_status
from audits.runner import CampaignRunner
from audits.scenario_library import load_library
from audits.starters import starter_path
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAFlag,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
    Store,
    blob_to_vector,
    open_store,
    upgrade,
)
from audits.themes.definitions import select_themes
from audits.themes.rates import campaign_id_of, current_rules, flag_frame, is_current
from audits.themes.triage import theme_directions
from nla.checkpoint import load_nla
from nla.pipeline import load_target
from nla.triage import triage_scores
from workbench.cli.progress import progress_bar

console = Console()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks.screening`, run as a script


def run_exhaustive(db: str, checkpoint: str) -> str:
    """The starter campaign with every assistant token verbalized; returns its name."""
    library = load_library()
    spec = load_campaign(starter_path("starter"), library)
    spec = spec.model_copy(
        update={
            "name": "triage-bench",
            "tokens": spec.tokens.model_copy(update={"max_per_transcript": None}),
            "nla": spec.nla.model_copy(update={"checkpoint": checkpoint}),
        }
    )
    upgrade(db)
    with open_store(db) as store:
        register_campaign(store, spec)
        CampaignRunner(store, spec.name, library, stage=lambda s: progress_bar(console, s)).run()
    return spec.name


def campaign_tokens(campaign_id: int) -> Select:
    """Ids of the token positions of one campaign (a reused store may hold others)."""
    return (
        select(SQLATokenPosition.id)
        .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .where(SQLAVariant.campaign_id == campaign_id)
    )


def token_table(store: Store, campaign: str) -> dict[int, list[tuple[float, bool, bool]]]:
    """Per transcript of ``campaign``: (triage score = max over themes, raised, raised and not
    low-fidelity) of every verbalized token, from the campaign's current flags only."""
    campaign_id = campaign_id_of(store, campaign)
    rules = current_rules(store, campaign_id)
    in_campaign = SQLATokenPosition.id.in_(campaign_tokens(campaign_id))
    with store.session() as s:
        triage = dict(
            s.execute(
                select(SQLATriageScore.token_position_id, func.max(SQLATriageScore.score))
                .where(SQLATriageScore.token_position_id.in_(campaign_tokens(campaign_id)))
                .group_by(SQLATriageScore.token_position_id)
            ).all()
        )
        flags: dict[int, tuple[bool, bool]] = {}
        for tp, raised, low in s.execute(
            select(SQLAFlag.token_position_id, SQLAFlag.raised, SQLAFlag.low_fidelity).where(
                SQLAFlag.campaign_id == campaign_id, is_current(rules)
            )
        ):
            any_raised, any_kept = flags.get(tp, (False, False))
            flags[tp] = (any_raised or raised, any_kept or (raised and not low))
        tokens = s.execute(
            select(SQLATokenPosition.transcript_id, SQLATokenPosition.id)
            .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
            .where(in_campaign)
            .order_by(SQLATokenPosition.id)
        ).all()
    out: dict[int, list[tuple[float, bool, bool]]] = defaultdict(list)
    for transcript, tp in tokens:
        out[transcript].append((triage[tp], *flags.get(tp, (False, False))))
    return out


def recall_curve(
    table: dict[int, list[tuple[float, bool, bool]]], which: int
) -> list[tuple[int, float, float, float]]:
    """(K, saving, recall of triage top-K, expected recall of K random tokens) for K = 1.. max."""
    total = sum(len(v) for v in table.values())
    flagged = sum(row[which] for v in table.values() for row in v)
    rows = []
    for k in range(1, max(len(v) for v in table.values()) + 1):
        kept = random = chosen = 0.0
        for tokens in table.values():
            order = sorted(range(len(tokens)), key=lambda i: (-tokens[i][0], i))[:k]
            kept += sum(tokens[i][which] for i in order)
            random += min(k, len(tokens)) / len(tokens) * sum(t[which] for t in tokens)
            chosen += min(k, len(tokens))
        rows.append(
            (
                k,
                total / chosen,
                kept / flagged if flagged else float("nan"),
                random / flagged if flagged else float("nan"),
            )
        )
    return rows


def costs(store: Store, campaign: str, checkpoint: str) -> tuple[float, float, float, int]:
    """Seconds per token: verbalizing it (all samples, AV + AR, as the runner measured), triaging it
    (the dot products), and the one-time theme-direction cost; and the token count. Only the
    campaign's activations and their explanations under its latest run's NLA and sampling count."""
    library = load_library()
    spec = load_campaign(starter_path("starter"), library)
    campaign_id = campaign_id_of(store, campaign)
    in_campaign = SQLAActivation.campaign_id == campaign_id
    with store.session() as s:
        provenance = s.scalar(
            select(SQLARun.provenance_json)
            .where(SQLARun.campaign_id == campaign_id)
            .order_by(SQLARun.id.desc())
            .limit(1)
        )
        per_explanation = s.scalar(
            select(func.avg(SQLAExplanation.generation_seconds)).where(
                SQLAExplanation.activation_key.in_(select(SQLAActivation.activation_key).where(in_campaign)),
                SQLAExplanation.checkpoint_id == provenance["checkpoint_id"],
                SQLAExplanation.sampling_key == provenance["sampling_key"],
            )
        )
        blobs = s.execute(select(SQLAActivation.vector, SQLAActivation.d_model).where(in_campaign)).all()
    vectors = torch.stack([torch.from_numpy(blob_to_vector(b, d)) for b, d in blobs])
    target = load_target(spec.target.model)
    nla = load_nla(checkpoint, target_ref=spec.target.model, layer=spec.nla.layer)
    began = time.perf_counter()
    directions = theme_directions(target, nla, select_themes(spec.themes))
    setup = time.perf_counter() - began
    repeats = 50
    began = time.perf_counter()
    for _ in range(repeats):
        triage_scores(vectors, directions, nla.meta.mse_scale)
    triage = (time.perf_counter() - began) / repeats / len(vectors)
    return per_explanation * spec.sampling.samples, triage, setup, len(vectors)


def run_exhaustive_organism(
    db: str, organism: str, requests: int, checkpoint: str
) -> tuple[str, CampaignSpec]:
    """An organism against its base over ``requests`` held-out requests, every user and assistant token
    verbalized (2 samples each)."""
    from audits.campaign_spec import campaign_from_dict
    from audits.organisms import get_organism

    o = get_organism(organism)
    library = load_library()
    slot, values = next(iter(library[o.scenarios[0]].conditions.items()))
    spec = campaign_from_dict({
        "name": f"screen-bench-{organism}", "target": {"max_new_tokens": 48},
        "arms": {"organism": {"model": o.ref}, "base": {"model": o.base}}, "control_arm": "base",
        "nla": {"checkpoint": checkpoint, "layer": 20}, "scenarios": {"ids": o.scenarios[:1]},
        "conditions": {slot: list(values)[:requests]},
        "tokens": {"roles": ["user", "assistant"], "max_per_transcript": None, "reply_header": True},
        "sampling": {"samples": 2, "temperature": 1.0, "top_p": 0.95, "max_new_tokens": 72},
        "themes": ["hidden_motive", "deception"],
    }, library)  # fmt: skip
    upgrade(db)
    with open_store(db) as store:
        register_campaign(store, spec)
        CampaignRunner(store, spec.name, library, stage=lambda s: progress_bar(console, s)).run()
    return spec.name, spec


def strategy_table(
    store: Store, campaign: str, spec: CampaignSpec, positives: dict[str, set[int]], args
) -> None:
    """Replay each strategy and print its recall at the 10x point and its curve."""
    from benchmarks.screening import campaign_tokens, directions_setup_seconds, interval, replay

    tokens = campaign_tokens(store, campaign)
    target = load_target(spec.control() and spec.arms[spec.control()].model or spec.target.model)
    nla = load_nla(spec.nla.checkpoint, target_ref=target.ref, layer=spec.nla.layer)
    verbalize = costs(store, campaign, spec.nla.checkpoint)[0] if spec.themes else float("nan")
    setup = directions_setup_seconds(store, campaign, spec, target, nla) / max(len(tokens.frame), 1)
    console.print(
        f"{campaign}: the one-time theme directions cost {setup * 1e3:.2f} ms per token over its "
        f"{len(tokens.frame)} tokens; each strategy's screening cost below includes it (the runner pays it "
        "whatever the strategy)"
    )
    table = Table("positives", "strategy", "K", "verbalized", "recall at the 10x point", "random", "screening cost",
                  title=f"{campaign}: {len(tokens.frame)} tokens, sample {args.sample:.0%}")  # fmt: skip
    for label, found in positives.items():
        if not found:
            console.print(f"{label}: no positives in the exhaustive run; recall undefined")
            continue
        for strategy, rounds, allocation in variants(args):
            curve = replay(store, campaign, spec, tokens, found, strategy, target=target, nla=nla, sample=args.sample,
                           max_k=args.max_k, rounds=rounds, allocation=allocation, control_target=target)  # fmt: skip
            if (rounds, allocation) != (1, "transcript"):
                strategy = f"{strategy}, {rounds} round{'s' * (rounds > 1)}, K per {allocation}"
            point = curve.at_saving(10)
            if not curve.points:
                table.add_row(label, strategy, "-", "-", curve.report[0]["note"], "-", "-")
                continue
            if point is None:
                table.add_row(label, strategy, "-", "-", "no K saves 10x", "-", "-")
                continue
            k, fraction, hit, total = point
            cost = curve.screening_seconds_per_token + setup
            ratio = f"1/{verbalize / cost:,.0f}" if verbalize == verbalize else "-"
            table.add_row(label, strategy, f"{k:g}", f"{fraction:.1%}", interval(hit, total), f"{fraction:.2f}",
                          f"{curve.screening_seconds_per_token * 1e3:.2f} + {setup * 1e3:.2f} setup ms/token "
                          f"({ratio})")  # fmt: skip
            console.print(
                f"{label} / {strategy}: "
                + ", ".join(f"K={k:g} {f:.1%}->{h / t:.2f}" for k, f, h, t in curve.points)
            )
            for entry in curve.report:
                console.print(f"   {entry}")
    console.print(table)


def variants(args: argparse.Namespace) -> list[tuple[str, int, str]]:
    """(strategy, rounds, allocation) to replay: directions once, each screened strategy per combination."""
    return [
        (strategy, rounds, allocation)
        for strategy in args.strategies
        for rounds in (args.rounds if strategy in ("distilled", "lens") else [1])
        for allocation in args.allocation
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="triage-bench.db", help="store to build (reused if it exists)")
    parser.add_argument(
        "--checkpoint",
        default="default",
        help="the NLA to verbalize with (default: the bundled trained NLA, else init)",
    )
    parser.add_argument(
        "--strategies", nargs="*", default=[], help="also replay: directions distilled lens delta"
    )
    parser.add_argument("--sample", type=float, default=0.04, help="screened strategies' sample share")
    parser.add_argument("--max-k", type=int, default=20)
    parser.add_argument(
        "--organism", nargs="*", default=[],
        help="also an exhaustive organism-against-base campaign for each (e.g. taboo-a taboo-b)",
    )  # fmt: skip
    parser.add_argument("--requests", type=int, default=12, help="organism campaign: requests per arm")
    parser.add_argument(
        "--no-starter", action="store_true",
        help="only the --organism campaigns (skip the starter's exhaustive run and its replay)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", nargs="+", type=int, choices=[1, 2], default=[1],
        help="screened strategies: 2 fits the screens again on the first half of K's explanations",
    )  # fmt: skip
    parser.add_argument(
        "--allocation", nargs="+", choices=["transcript", "campaign"], default=["transcript"],
        help="K tokens per transcript, or K x transcripts over the whole campaign",
    )  # fmt: skip
    args = parser.parse_args()
    if args.no_starter:
        if not (args.organism and args.strategies):
            parser.error("--no-starter needs --organism and --strategies (there is nothing else to measure)")
        replay_organisms(args)
        return
    name = run_exhaustive(args.db, args.checkpoint)
    with open_store(args.db) as store:
        table = token_table(store, name)
        verbalize, triage, setup, n = costs(store, name, args.checkpoint)
        statuses = campaign_status(store, name, load_library()).explanations
    console.print(
        f"campaign {name}: {n} verbalized tokens in {len(table)} transcripts, NLA {args.checkpoint!r}"
    )
    console.print(
        f"cost per token: verbalize {verbalize * 1e3:.1f} ms (all samples, AV + AR) · triage {triage * 1e6:.2f} µs "
        f"(dot products) -> ratio 1/{verbalize / triage:,.0f}; one-time theme directions {setup:.1f} s "
        f"(= {setup / n * 1e3:.1f} ms per token over this campaign; ratio incl. it 1/{verbalize / (triage + setup / n):,.0f})"
    )
    console.print(f"explanations by status: {statuses} (only 'ok' ones are scored for themes)")
    for which, label in ((1, "all raised flags"), (2, "raised flags above the fidelity gate")):
        flagged = sum(row[which] for v in table.values() for row in v)
        if not flagged:
            console.print(f"recall of {label}: undefined, exhaustive verbalization raised no such flag")
            continue
        curve = recall_curve(table, which)
        out = Table(
            "K", "saving", "triage recall", "random recall", title=f"recall of {label} ({flagged} tokens)"
        )
        for k, saving, recall, random in curve:
            if k <= 12 or k % 10 == 0:
                out.add_row(str(k), f"{saving:.1f}x", f"{recall:.2f}", f"{random:.2f}")
        console.print(out)
        ten = next((row for row in reversed(curve) if row[1] >= 10), None)  # the largest K still saving 10x
        if ten is None:
            console.print("no K gives a 10x saving on these transcripts")
        else:
            k, saving, recall, random = ten
            console.print(
                f"at K={k} (saving {saving:.1f}x): triage recall {recall:.2f} vs random {random:.2f}"
            )
    if args.strategies:
        replay_strategies(args, name)


def replay_strategies(args: argparse.Namespace, name: str) -> None:
    """The screened strategies on the starter (raised flags per theme), then on each organism."""
    library = load_library()
    spec = load_campaign(starter_path("starter"), library)
    spec = spec.model_copy(
        update={"name": name, "nla": spec.nla.model_copy(update={"checkpoint": args.checkpoint})}
    )
    with open_store(args.db) as store:
        flags = flag_frame(store, name, raised_only=True)
        positives = {"raised flags (any theme)": set(flags["token_position_id"])}
        positives |= {f"raised {t}": set(g["token_position_id"]) for t, g in flags.groupby("theme_id")}
        strategy_table(store, name, spec, positives, args)
    replay_organisms(args)


def replay_organisms(args: argparse.Namespace) -> None:
    """Each ``--organism`` against its base, exhaustively verbalized, then the strategies replayed on it;
    what must be kept is the organism's tokens whose explanations name an answer-key term (the key is read
    here, by the scorer, and by nothing that screens)."""
    from audits.organisms.answer_keys import load_answer_key
    from benchmarks.screening import key_positives

    for organism in args.organism:
        organism_name, organism_spec = run_exhaustive_organism(
            args.db, organism, args.requests, args.checkpoint
        )
        key = load_answer_key(organism)
        keys = {t.lower() for t in key.terms} | ({key.taboo.word, *key.taboo.forms} if key.taboo else set())
        with open_store(args.db) as store:
            found = key_positives(store, organism_name, keys, "organism")
            strategy_table(
                store, organism_name, organism_spec, {"answer-key terms (organism arm)": found}, args
            )


if __name__ == "__main__":
    main()
