"""Expand a campaign into variants: each scenario x each cell of its condition grid, plus controls."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from audits.campaign_spec import CampaignSpec, selected_scenarios
from audits.scenario_library import SLOT, Scenario
from nla.transcript import Message, Transcript


@dataclass(frozen=True)
class Variant:
    """One concrete transcript to run: a scenario rendered for one condition cell, or its control."""

    key: str
    """Stable id within the campaign: ``scenario@vN/main|control/slot=value,...``."""
    scenario_id: str
    scenario_version: int
    is_control: bool
    conditions: dict[str, str]
    transcript: Transcript
    generate_reply: bool
    """True when the target writes the final assistant turn."""


def _cells(scenario: Scenario, wanted: dict[str, list[str]]) -> list[dict[str, str]]:
    """The scenario's factorial grid, narrowed to the campaign's chosen values where given."""
    slots = sorted(scenario.conditions)
    values = [
        [v for v in scenario.conditions[s] if v in wanted.get(s, scenario.conditions[s])] for s in slots
    ]
    return [dict(zip(slots, combo, strict=True)) for combo in itertools.product(*values)]


def _control_cell(scenario: Scenario, cell: dict[str, str]) -> dict[str, str]:
    """The part of a condition cell the control's messages actually use."""
    used = {slot for m in scenario.control.messages for slot in SLOT.findall(m.content)}
    return {slot: value for slot, value in cell.items() if slot in used}


def _variant(spec: CampaignSpec, scenario: Scenario, cell: dict[str, str], control: bool) -> Variant:
    messages = scenario.render(cell, control=control)
    given = scenario.reply == "given" and spec.target.replies == "scenario"
    if not given and messages[-1].role == "assistant":
        messages = messages[:-1]
    label = ",".join(f"{k}={v}" for k, v in sorted(cell.items()))
    key = f"{scenario.id}@v{scenario.version}/{'control' if control else 'main'}/{label}"
    transcript = Transcript(tuple(Message(m.role, m.content) for m in messages), key)
    return Variant(key, scenario.id, scenario.version, control, cell, transcript, not given)


def expand_variants(spec: CampaignSpec, library: dict[str, Scenario]) -> list[Variant]:
    """All variants of a campaign in a deterministic order. A control is rendered once per
    combination of the slots it uses, so a control without slots appears once per scenario."""
    variants: list[Variant] = []
    for scenario in selected_scenarios(spec.scenarios, library):
        controls: dict[str, Variant] = {}
        for cell in _cells(scenario, spec.conditions):
            variants.append(_variant(spec, scenario, cell, control=False))
            if spec.scenarios.controls:
                control = _variant(spec, scenario, _control_cell(scenario, cell), control=True)
                controls.setdefault(control.key, control)
        variants.extend(controls.values())
    return variants
