"""``init``: an untrained NLA built from any base model (AV = the base with the marker prompt,
AR = the base truncated to blocks 0..K with an identity value head). Training starts from it and
tests use it; its explanations carry no information about the vector."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from filelock import FileLock
from transformers import AutoConfig

from nla.activations import check_layer
from nla.checkpoint.save import save_compact
from nla.metrics import fve_baseline
from nla.prompts import ar_suffix_ids, pick_marker
from nla.reconstructor import identity_head
from nla.reference import reference_vectors
from nla.resolve import cache_root, load_causal_lm, load_tokenizer, parse_model_ref, resolve_model_location
from nla.sidecar import DEFAULT_AR_TEMPLATE, DEFAULT_AV_TEMPLATE, NLAMeta


def default_layer(n_layers: int) -> int:
    """Two thirds of the way up the stack, where the released NLAs read (Qwen 20/28, Gemma 32/48)."""
    return round(n_layers * 2 / 3)


def round_up(value: float) -> float:
    """``value`` rounded up to two significant figures: 'a round number a bit above'."""
    step = 10 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / step) * step


def _portable_ref(ref: str) -> str:
    """The reference as a compact checkpoint should record it: local paths made absolute."""
    parsed = parse_model_ref(ref)
    return str(Path(parsed.location).resolve()) if parsed.kind == "local" else ref


def init_nla(base_ref: str, layer: int | None, out_dir: Path, *, dtype=torch.float32, device="cpu") -> Path:
    """Build an untrained NLA over ``base_ref`` reading ``layer`` and save it in compact form."""
    model = load_causal_lm(base_ref, dtype=dtype, device=device)
    tokenizer = load_tokenizer(base_ref)
    config = model.config.get_text_config()
    layer = default_layer(config.num_hidden_layers) if layer is None else layer
    check_layer(model, layer)
    char, prompt = pick_marker(tokenizer, DEFAULT_AV_TEMPLATE)
    vectors = reference_vectors(model, tokenizer, layer)
    d_model = config.hidden_size
    meta = NLAMeta(
        layer=layer,
        d_model=d_model,
        injection_scale=round_up(float(vectors.norm(dim=1).mean())),
        mse_scale=math.sqrt(d_model),
        injection_char=char,
        injection_token_id=prompt.input_ids[prompt.site],
        left_neighbor_id=prompt.input_ids[prompt.site - 1],
        right_neighbor_id=prompt.input_ids[prompt.site + 1],
        critic_suffix_ids=ar_suffix_ids(tokenizer, DEFAULT_AR_TEMPLATE),
        av_template=DEFAULT_AV_TEMPLATE,
        ar_template=DEFAULT_AR_TEMPLATE,
        stage="init",
        base_model=_portable_ref(base_ref),
    ).with_baseline(fve_baseline(vectors, math.sqrt(d_model)), len(vectors))
    head = identity_head(d_model, next(model.parameters()))
    return save_compact(meta, out_dir, head, force=True)


def cached_init_dir(target_ref: str, layer: int | None, **load: object) -> Path:
    """The cached ``init`` NLA for ``target_ref`` at ``layer`` (built on first use)."""
    ref = parse_model_ref(target_ref)
    if layer is None:
        config = AutoConfig.from_pretrained(resolve_model_location(ref)).get_text_config()
        layer = default_layer(config.num_hidden_layers)
    out = cache_root() / "nla" / f"init-{ref.cache_key}-L{layer}"
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(out) + ".lock"):
            if not out.is_dir():
                init_nla(target_ref, layer, out, **load)
    return out
