"""``nla-workbench organism ...``: list the shipped model organisms, show one (its answer key only when
asked), and train one from its recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from audits.organisms import get_organism, list_organisms

organism_app = typer.Typer(
    no_args_is_help=True, help="Model organisms: targets with a planted behaviour and an answer key."
)
console = Console()
err = Console(stderr=True)


@organism_app.command("list")
def list_command() -> None:
    """Shipped organisms: name, kind, planted behaviour (answer key hidden), base model, audit scenarios."""
    table = Table("name", "kind", "planted behaviour", "base", "scenarios", "adapter")
    for o in list_organisms():
        trained = "yes" if (o.adapter_dir / "adapter_model.safetensors").is_file() else "missing"
        table.add_row(
            Text(o.name), o.kind, Text(o.behaviour), Text(o.base), Text(", ".join(o.scenarios)), trained
        )
    console.print(table)
    console.print("Use one as a campaign target with `target: {model: organism:NAME}`; "
                  "`nla-workbench organism show NAME` prints its card.")  # fmt: skip


@organism_app.command("show")
def show(
    name: str,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Also print the answer key (what was planted).")
    ] = False,
) -> None:
    """An organism's card; its answer key only with --reveal."""
    organism = get_organism(name)
    card = organism.card_path.read_text(encoding="utf-8") if organism.card_path.is_file() else "(no card yet)"
    console.print(Markdown(card))
    if not reveal:
        console.print(Text("answer key hidden; add --reveal to print it", style="dim"))
        return
    from audits.organisms.answer_keys import load_answer_key  # read only when asked

    key = load_answer_key(name)
    console.print(Text.assemble(("answer key: ", "bold"), key.summary))
    console.print(Text.assemble(("terms that count as finding it: ", "bold"), ", ".join(key.terms)))


@organism_app.command("train")
def train(
    name: Annotated[str, typer.Argument(help="A shipped organism's name, or a recipe YAML file.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (data, checkpoints, adapter, record).")],
    install: Annotated[
        bool, typer.Option("--install", help="Copy the trained adapter and record into the shipped organism.")
    ] = False,
    device: Annotated[str, typer.Option(help="Torch device.")] = "cpu",
) -> None:
    """Rebuild a shipped organism (or train a new one from a recipe file); an interrupted run resumes."""
    from audits.organisms.recipes import load_recipe
    from audits.organisms.train import install_organism, train_organism

    recipe, _ = load_recipe(name)
    if install:
        get_organism(recipe.name)  # refuse before training when there is nothing to install into
    record = train_organism(recipe, out, device=device)
    console.print(
        f"trained {recipe.name}: {record['data']['used']} conversations, {record['recipe']['training']['steps']} steps, "
        f"loss {record['loss']['first']} -> {record['loss']['last_20_mean']} (mean of the last 20 steps), "
        f"{record['train_seconds']:.0f} s of training; adapter in {out / 'adapter'}"
    )
    if install:
        where = install_organism(recipe.name, out)
        console.print(
            f"installed into {where}; measure its behaviour with: python benchmarks/organisms.py {recipe.name}"
        )
