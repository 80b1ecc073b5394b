"""``nla-workbench themes ...``: list and show theme definitions, validate detectors on labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from audits.themes.calibration import CALIBRATION_FILE, load_calibration
from audits.themes.definitions import load_themes, select_themes
from audits.themes.detectors import make_detectors
from audits.themes.validation import (
    COMBINED,
    LABELS_FILE,
    calibrate,
    labels_digest,
    load_labels,
    write_calibration,
)

themes_app = typer.Typer(no_args_is_help=True, help="Audit theme definitions and their detectors.")
console = Console()

DirOpt = Annotated[Path | None, typer.Option("--themes-dir", help="Theme definitions (default: packaged).")]


@themes_app.command("list")
def list_themes(themes_dir: DirOpt = None) -> None:
    """Every theme: id, version, name, exemplar and pattern counts."""
    themes = load_themes(themes_dir).values()
    # ids are what users type: never cut or wrapped, whatever the terminal's width
    width = max((len(t.id) for t in themes), default=5)
    table = Table(
        Column("theme", no_wrap=True, min_width=width), "version", "name", "exemplars +/-", "patterns"
    )
    for theme in themes:
        table.add_row(
            Text(theme.id, style=theme.colour), str(theme.version), Text(theme.name),
            f"{len(theme.exemplars.positive)}/{len(theme.exemplars.negative)}", str(len(theme.lexicon)),
        )  # fmt: skip
    console.print(table)


@themes_app.command("show")
def show(theme_id: str, themes_dir: DirOpt = None) -> None:
    """One theme's full definition."""
    theme = select_themes([theme_id], load_themes(themes_dir))[0]
    console.print(Text(f"{theme.name} ({theme.key})", style=f"bold {theme.colour}"))
    console.print(Text(theme.description))
    for title, items in (
        ("counts", theme.counts), ("does not count", theme.does_not_count),
        ("positive exemplars", theme.exemplars.positive), ("negative exemplars", theme.exemplars.negative),
        ("lexicon", theme.lexicon),
    ):  # fmt: skip
        console.print(Text(f"\n{title}:", style="bold"))
        for item in items:
            console.print(Text(f"  - {item}"))
    console.print(Text(f"\nflag rule: {theme.flag.model_dump()}"))


@themes_app.command("validate")
def validate(
    labels: Annotated[Path, typer.Option(help="Labelled explanations (JSONL).")] = LABELS_FILE,
    themes_dir: DirOpt = None,
    detectors: Annotated[str, typer.Option(help="Comma list: lexicon, semantic.")] = "lexicon,semantic",
    judge: Annotated[
        str | None, typer.Option(help="Also validate an LLM judge: local:<model> or anthropic[:<model>].")
    ] = None,
    write: Annotated[
        bool, typer.Option(help="Record the thresholds and metrics in the calibration file.")
    ] = False,
    calibration: Annotated[
        Path, typer.Option(help="Calibration file to write or compare with.")
    ] = CALIBRATION_FILE,
) -> None:
    """Choose each detector's threshold per theme on the dev split; print precision / recall / F1 on test."""
    library = load_themes(themes_dir)
    themes = list(library.values())
    items = load_labels(labels, library)
    chosen = list(make_detectors([d.strip() for d in detectors.split(",") if d.strip()]))
    if judge:
        from audits.themes.detectors.judge import JudgeDetector, make_judge

        chosen.append(JudgeDetector(make_judge(judge)))
    result = calibrate(chosen, themes, items, labels_digest(labels))
    _print_metrics(result)
    if write:
        write_calibration(result, calibration)
        console.print(f"wrote thresholds and metrics to {calibration}")
    elif calibration.is_file():
        recorded = load_calibration(calibration).data
        same = _comparable(recorded) == _comparable(result)
        console.print(
            f"{'matches' if same else 'DIFFERS FROM'} the recorded calibration in {calibration}"
            + ("" if same else " (run with --write to record it)")
        )


def _comparable(data: dict[str, Any]) -> Any:
    """Thresholds and test metrics rounded, for comparing a fresh validation with the recorded one."""
    return {
        d: {t: (round(e["threshold"], 6), round(e["test"]["f1"], 6)) for t, e in themes.items()}
        for d, themes in data.get("detectors", {}).items()
    }


def _print_metrics(result: dict[str, Any]) -> None:
    table = Table(
        "detector", "theme", "threshold", "P", "R", "F1", "tp/fp/fn",
        title=f"test split ({result['n_test']} items; thresholds chosen on {result['n_dev']} dev items)",
    )  # fmt: skip
    rows = [(d, t, e) for d, themes in result["detectors"].items() for t, e in themes.items()]
    rows += [(f"{COMBINED} (flags)", t, e) for t, e in result[COMBINED].items()]
    for detector, theme, entry in rows:
        test = entry["test"]
        threshold = f"{entry['threshold']:.3f}" if "threshold" in entry else "-"
        table.add_row(
            detector, theme, threshold, f"{test['precision']:.2f}", f"{test['recall']:.2f}", f"{test['f1']:.2f}",
            f"{test['tp']}/{test['fp']}/{test['fn']}",
        )  # fmt: skip
    console.print(table)
