"""Theme triage: each theme as a probe for :mod:`nla.triage` (its description, what counts and its
exemplars against its look-alikes), turned into directions with a campaign's NLA and target."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from audits.themes.definitions import Theme
from nla.checkpoint import NLA
from nla.pipeline import Target
from nla.reference import reference_vectors
from nla.triage import Probe, ProbeDirection, probe_directions


def theme_probe(theme: Theme) -> Probe:
    """The texts that describe a theme, and its innocent look-alikes."""
    return Probe(
        theme.key,
        (theme.description, *theme.counts, *theme.exemplars.positive),
        (*theme.does_not_count, *theme.exemplars.negative),
    )


_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Directions already computed, per loaded target model and NLA reconstructor (dropped with them): a
process that keeps its models loaded between runs (the dashboard's Explore) computes them once."""


def theme_directions(target: Target, nla: NLA, themes: Sequence[Theme]) -> list[ProbeDirection]:
    """One direction per theme in the NLA's activation space, z-scored on reference activations of
    the target at the NLA's layer; computed once per loaded target, NLA checkpoint and theme contents
    (a second campaign in the same process computes only the themes the first did not have)."""
    kept = _KEPT.setdefault(target.model, weakref.WeakKeyDictionary()).setdefault(nla.ar, {})
    keys = [(t.key, t.content_hash()) for t in themes]
    missing = [t for t, key in zip(themes, keys, strict=True) if key not in kept]
    if missing:
        reference = reference_vectors(target.model, target.tokenizer, nla.meta.layer)
        found = probe_directions(
            nla.ar.reconstruct, [theme_probe(t) for t in missing], reference, nla.meta.mse_scale
        )
        kept.update({(t.key, t.content_hash()): d for t, d in zip(missing, found, strict=True)})
    return [kept[key] for key in keys]
