"""The NLA engine: verbalize vectors, parse explanations, reconstruct and score them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nla.backends.base import NLABackend
from nla.errors import InputError
from nla.metrics import check_vectors, score
from nla.parsing import Status, parse_explanation
from nla.sampling import SamplingParams
from nla.verbalizer import Progress, vector_digest


@dataclass(frozen=True)
class Explanation:
    """One explanation sample for one vector, with its status and AR fidelity."""

    vector_index: int
    sample_index: int
    vector_digest: str
    """sha256 of the vector's float32 bytes: the activation key results are stored under."""
    text: str
    status: Status
    raw: str
    n_tokens: int
    finish: str
    cos: float | None
    mse: float | None
    fve: float | None
    """None when the NLA has no FVE baseline, or the explanation did not parse."""


class NLAEngine:
    """Batch-verbalizes activation vectors and scores every explanation with the AR."""

    def __init__(self, backend: NLABackend) -> None:
        self.backend = backend
        self.meta = backend.meta

    def explain(
        self,
        vectors: torch.Tensor,
        sampling: SamplingParams,
        *,
        samples: int = 1,
        progress: Progress | None = None,
        source: str = "vectors",
    ) -> list[Explanation]:
        """``samples`` scored explanations per vector, ordered by (vector, sample)."""
        check_vectors(vectors, self.meta.d_model, source)
        if samples < 1:
            raise InputError(f"samples must be >= 1, got {samples}")
        generations = self.backend.verbalize(vectors, sampling, samples, progress)
        parsed = [parse_explanation(g.text, self.meta.injection_char) for g in generations]
        ok = [i for i, p in enumerate(parsed) if p.status is Status.OK]
        fidelity: dict[int, tuple[float, float, float | None]] = {}
        if ok:
            pred = self.backend.reconstruct([parsed[i].text for i in ok])
            gold = vectors[[generations[i].vector_index for i in ok]]
            rec = score(pred, gold, self.meta.mse_scale, self.meta.fve_baseline)
            for j, i in enumerate(ok):
                fve = None if rec.fve is None else float(rec.fve[j])
                fidelity[i] = (float(rec.cos[j]), float(rec.mse[j]), fve)
        digests = [vector_digest(v) for v in vectors]
        return [
            Explanation(
                g.vector_index,
                g.sample_index,
                digests[g.vector_index],
                p.text,
                p.status,
                g.text,
                g.n_tokens,
                g.finish,
                *fidelity.get(i, (None, None, None)),
            )  # fmt: skip
            for i, (g, p) in enumerate(zip(generations, parsed, strict=True))
        ]
