"""Expand a campaign into variants: each scenario x each cell of its condition grid, plus controls."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from audits.campaign_spec import CampaignSpec, selected_scenarios
from audits.scenario_library import SLOT, Scenario
from nla.transcript import Message, Transcript

ARM_SLOT = "arm"
"""The condition slot that holds a variant's target arm."""


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
    arm: str = ""
    """The target arm (``""`` in a single-target campaign); also the ``arm`` slot of ``conditions``."""
    reads: str | None = None
    """Key of the variant whose transcript this one reads (an arm reading another arm's text)."""


def _cells(scenario: Scenario, wanted: dict[str, list[str]]) -> list[dict[str, str]]:
    """The scenario's factorial grid, narrowed to the campaign's chosen values where given."""
    slots = sorted(scenario.conditions)
    values = [
        [v for v in scenario.conditions[s] if v in wanted.get(s, scenario.conditions[s])] for s in slots
    ]
    return [dict(zip(slots, combo, strict=True)) for combo in itertools.product(*values)]


def _control_cell(scenario: Scenario, cell: dict[str, str]) -> dict[str, str]:
    """The part of a condition cell the control's messages actually use (the arm always)."""
    used = {slot for m in scenario.control.messages for slot in SLOT.findall(m.content)} | {ARM_SLOT}
    return {slot: value for slot, value in cell.items() if slot in used}


def _variant(spec: CampaignSpec, scenario: Scenario, cell: dict[str, str], control: bool) -> Variant:
    messages = scenario.render({k: v for k, v in cell.items() if k != ARM_SLOT}, control=control)
    given = scenario.reply == "given" and spec.target.replies == "scenario"
    if not given and messages[-1].role == "assistant":
        messages = messages[:-1]
    label = ",".join(f"{k}={v}" for k, v in sorted(cell.items()))
    key = f"{scenario.id}@v{scenario.version}/{'control' if control else 'main'}/{label}"
    transcript = Transcript(tuple(Message(m.role, m.content) for m in messages), key)
    return Variant(key, scenario.id, scenario.version, control, cell, transcript, not given)


def expand_variants(spec: CampaignSpec, library: dict[str, Scenario]) -> list[Variant]:
    """All variants of a campaign in a deterministic order. A control is rendered once per
    combination of the slots it uses, so a control without slots appears once per scenario. With target
    arms, every variant is run once per arm (slot ``arm``), arm after arm with reading arms last; a
    reading arm's variant names the variant whose transcript it reads."""
    variants: list[Variant] = []
    for arm_name, arm in spec.target_arms().items():
        at = {ARM_SLOT: arm_name} if arm_name else {}
        for scenario in selected_scenarios(spec.scenarios, library):
            controls: dict[str, Variant] = {}
            for cell in _cells(scenario, spec.conditions):
                variants.append(_in_arm(spec, scenario, {**cell, **at}, False, arm.reads))
                if spec.scenarios.controls and scenario.control is not None:
                    control = _in_arm(
                        spec, scenario, _control_cell(scenario, {**cell, **at}), True, arm.reads
                    )
                    controls.setdefault(control.key, control)
            variants.extend(controls.values())
    return variants


def _in_arm(
    spec: CampaignSpec, scenario: Scenario, cell: dict[str, str], control: bool, reads: str | None
) -> Variant:
    """The variant of ``cell`` (whose ``arm`` slot names its arm, if any); an arm that reads another arm
    gets no reply of its own and points at that arm's variant of the same cell."""
    variant = _variant(spec, scenario, cell, control)
    arm = cell.get(ARM_SLOT, "")
    if reads is None:
        return replace(variant, arm=arm)
    source = _variant(spec, scenario, {**cell, ARM_SLOT: reads}, control).key
    return replace(variant, arm=arm, reads=source, generate_reply=False)
