"""``nla_meta.yaml``: the sidecar that tells inference how an NLA checkpoint was built.

Reads the released schema (v2) and the older spellings found in the wild: ``role`` actor/critic,
``prompt_templates.actor``/``.critic``, and the extraction layer as ``critic.extraction_layer_index``,
``critic.num_hidden_layers``, ``ar.num_hidden_layers`` or top-level ``extraction_layer_index``.
Writes schema v2 with the release spellings (``av``/``ar``) plus the top-level layer index.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from nla.errors import CheckpointError

SIDECAR = "nla_meta.yaml"
SCHEMA_VERSION = 2
_ROLE_ALIASES = {"av": "av", "actor": "av", "ar": "ar", "critic": "ar"}
_LAYER_KEYS = (
    "extraction_layer_index",
    "critic.extraction_layer_index",
    "critic.num_hidden_layers",
    "ar.num_hidden_layers",
)
DEFAULT_AV_TEMPLATE = (
    "You are a meticulous AI researcher conducting an important investigation into activation vectors "
    "from a language model. Your overall task is to describe the semantic content of that activation "
    "vector.\n\nWe will pass the vector enclosed in <concept> tags into your context. You must then "
    "produce an explanation for the vector, enclosed within <explanation> tags. The explanation consists "
    "of 2-3 text snippets describing that vector.\n\nHere is the vector:\n\n"
    "<concept>{injection_char}</concept>\n\nPlease provide an explanation."
)
DEFAULT_AR_TEMPLATE = "Summary of the following text: <text>{explanation}</text> <summary>"


@dataclass(frozen=True)
class NLAMeta:
    """Everything inference needs about an NLA pair, with the spellings normalised."""

    layer: int
    d_model: int
    injection_scale: float | None
    mse_scale: float
    injection_char: str
    injection_token_id: int
    left_neighbor_id: int
    right_neighbor_id: int
    critic_suffix_ids: tuple[int, ...] | None
    av_template: str
    ar_template: str
    fve_baseline: float | None = None
    fve_baseline_vectors: int | None = None
    stage: str | None = None
    base_model: str | None = None

    def with_baseline(self, value: float, n_vectors: int) -> NLAMeta:
        """A copy carrying the FVE baseline variance B and the number of vectors it came from."""
        return replace(self, fve_baseline=value, fve_baseline_vectors=n_vectors)


def read_sidecar(path: Path) -> dict[str, Any]:
    """Load a sidecar file as a dict, refusing anything that is not an NLA model sidecar."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: an NLA checkpoint directory needs its {SIDECAR}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a mapping at the top level")
    if raw.get("kind") != "nla_model":
        raise CheckpointError(f"{path}: kind must be 'nla_model', got {raw.get('kind')!r}")
    return raw


def sidecar_role(raw: dict[str, Any], where: Path) -> str:
    """``av`` or ``ar``, accepting the older ``actor``/``critic``."""
    role = _ROLE_ALIASES.get(str(raw.get("role")))
    if role is None:
        raise CheckpointError(f"{where}: role must be av/ar (or actor/critic), got {raw.get('role')!r}")
    return role


def _lookup(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _require(raw: dict[str, Any], dotted: str, kind: type, where: Path) -> Any:
    value = _lookup(raw, dotted)
    if value is None:
        raise CheckpointError(f"{where}: missing field {dotted}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CheckpointError(f"{where}: field {dotted} must be {kind.__name__}, got {value!r}")
    return value


def _template(raw: dict[str, Any], role: str, where: Path) -> str:
    old = {"av": "actor", "ar": "critic"}[role]
    value = _lookup(raw, f"prompt_templates.{role}") or _lookup(raw, f"prompt_templates.{old}")
    if not isinstance(value, str):
        raise CheckpointError(f"{where}: missing field prompt_templates.{role} (or .{old})")
    return value


def sidecar_layer(raw: dict[str, Any], where: Path) -> int | None:
    """The extraction layer K under any of its spellings; they must agree when several appear."""
    found = {key: _lookup(raw, key) for key in _LAYER_KEYS if _lookup(raw, key) is not None}
    values = set(found.values())
    if len(values) > 1:
        raise CheckpointError(f"{where}: extraction layer spellings disagree: {found}")
    if not values:
        return None
    value = values.pop()
    if not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{where}: extraction layer must be a non-negative integer, got {value!r}")
    return value


def _injection_scale(raw: dict[str, Any], d_model: int, where: Path) -> float | None:
    value = _lookup(raw, "extraction.injection_scale")
    if value in (None, "raw"):
        return None
    if value == "sqrt_d_model":
        return math.sqrt(d_model)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise CheckpointError(f"{where}: extraction.injection_scale must be a positive number, got {value!r}")


def meta_from_sidecars(av: dict[str, Any], ar: dict[str, Any], av_path: Path, ar_path: Path) -> NLAMeta:
    """Combine the AV and AR sidecars into one normalised view, checking they describe one pair."""
    d_model = _require(av, "d_model", int, av_path)
    if ar.get("d_model") not in (None, d_model):
        raise CheckpointError(f"{ar_path}: d_model {ar.get('d_model')} differs from the AV's {d_model}")
    layers = {sidecar_layer(av, av_path), sidecar_layer(ar, ar_path)} - {None}
    if not layers:
        raise CheckpointError(f"{ar_path}: missing the extraction layer ({' / '.join(_LAYER_KEYS)})")
    if len(layers) > 1:
        raise CheckpointError(f"{av_path} and {ar_path} name different extraction layers: {sorted(layers)}")
    scale = _injection_scale(av, d_model, av_path)
    if scale is None:
        raise CheckpointError(f"{av_path}: extraction.injection_scale is required by the verbalizer")
    mse_scale = _lookup(av, "extraction.mse_scale") or _lookup(ar, "extraction.mse_scale")
    suffix = _lookup(av, "tokens.critic_suffix_ids") or _lookup(ar, "tokens.critic_suffix_ids")
    baseline = _lookup(ar, "metrics.fve_baseline") or _lookup(av, "metrics.fve_baseline")
    return NLAMeta(
        layer=layers.pop(),
        d_model=d_model,
        injection_scale=scale,
        mse_scale=float(mse_scale) if isinstance(mse_scale, int | float) else math.sqrt(d_model),
        injection_char=_require(av, "tokens.injection_char", str, av_path),
        injection_token_id=_require(av, "tokens.injection_token_id", int, av_path),
        left_neighbor_id=_require(av, "tokens.injection_left_neighbor_id", int, av_path),
        right_neighbor_id=_require(av, "tokens.injection_right_neighbor_id", int, av_path),
        critic_suffix_ids=tuple(suffix) if isinstance(suffix, list) else None,
        av_template=_template(av, "av", av_path),
        ar_template=_template(ar, "ar", ar_path) if _has_template(ar, "ar") else _template(av, "ar", av_path),
        fve_baseline=float(baseline) if isinstance(baseline, int | float) else None,
        fve_baseline_vectors=_lookup(ar, "metrics.fve_baseline_vectors"),
        stage=av.get("stage"),
        base_model=av.get("base_checkpoint"),
    )


def _has_template(raw: dict[str, Any], role: str) -> bool:
    old = {"av": "actor", "ar": "critic"}[role]
    return isinstance(
        _lookup(raw, f"prompt_templates.{role}") or _lookup(raw, f"prompt_templates.{old}"), str
    )


def sidecar_dict(meta: NLAMeta, role: str, **extra: Any) -> dict[str, Any]:
    """The schema-v2 sidecar for one half of the pair (``role`` = av/ar)."""
    data: dict[str, Any] = {
        "kind": "nla_model",
        "schema_version": SCHEMA_VERSION,
        "role": role,
        "stage": meta.stage,
        "base_checkpoint": meta.base_model,
        "d_model": meta.d_model,
        "extraction_layer_index": meta.layer,
        "extraction": {
            "injection_scale": meta.injection_scale if role == "av" else None,
            "mse_scale": meta.mse_scale,
        },
        "tokens": {
            "injection_char": meta.injection_char,
            "injection_token_id": meta.injection_token_id,
            "injection_left_neighbor_id": meta.left_neighbor_id,
            "injection_right_neighbor_id": meta.right_neighbor_id,
            "critic_suffix_ids": list(meta.critic_suffix_ids) if meta.critic_suffix_ids else None,
        },
        "prompt_templates": {"av": meta.av_template, "ar": meta.ar_template},
        "created_by": f"nla-workbench {_version()}",
    }
    if meta.fve_baseline is not None:
        data["metrics"] = {
            "fve_baseline": meta.fve_baseline,
            "fve_baseline_vectors": meta.fve_baseline_vectors,
            "fve_baseline_definition": "mean per-element variance of sqrt(d)-normalised gold vectors",
        }
    data.update(extra)
    return data


def _version() -> str:
    try:
        return importlib.metadata.version("nla-workbench")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_sidecar(path: Path, data: dict[str, Any]) -> None:
    """Write a sidecar as YAML (unicode kept readable), replacing any old file atomically."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(staging, path)
