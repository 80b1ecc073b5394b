"""Model organisms: targets deliberately given a hidden behaviour, shipped with answer keys.

An organism is a small LoRA adapter on a base model (``shipped/<name>/adapter``) with a public card and
a recipe that rebuilds it (``recipes/<name>.yaml``). Its answer key (``keys/<name>.yaml``) says what was
planted; only scorers (``audits.organisms.scoring``, the benchmarks), organism training and
``nla-workbench organism show --reveal`` read it (``audits.organisms.answer_keys``). Nothing that
produces explanations, flags or discoveries imports that module; a test runs the pipeline with the key
files absent and fails on any attempt to open one.
"""

from audits.organisms.catalog import (
    ORGANISM_PREFIX,
    Organism,
    get_organism,
    list_organisms,
    resolve_target_model,
)

__all__ = ["ORGANISM_PREFIX", "Organism", "get_organism", "list_organisms", "resolve_target_model"]
