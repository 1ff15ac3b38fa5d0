"""Which backend runs: `PLATFORM_EMBED_BACKEND=auto|torch|onnx|onnx-int8` (or `TextEmbedder.backend`).

- `torch`: sentence-transformers, fp32 on CPU; fp16 on a CUDA GPU (verified against fp32 where it loads).
- `onnx`: the packaged model exported once (onnx_export.py), run by ONNX Runtime on CPU.
- `onnx-int8`: the ONNX export with its weight MatMuls dynamically quantised to int8 (per channel). About 2x
  faster than torch on CPU, but measurably different (mean cosine to torch about 0.99): opt-in only, in a
  vector space of its own.
- `auto` (default): torch fp16 on a GPU; on CPU `onnx` when its verification passes, else torch, with a
  warning saying why.

Every vector is stamped with the id of the space it lives in (model.FP32_SPACE or model.INT8_SPACE); which
backends share a space is decided by verification.py.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from platform_assets.lib.config import embed_backend_name, get_settings
from platform_assets.lib.embedding.encoders import Encoder, OnnxEncoder, TorchEncoder
from platform_assets.lib.embedding.export_cache import cache_key
from platform_assets.lib.embedding.model import FP32_SPACE, INT8_SPACE
from platform_assets.lib.embedding.onnx_export import ensure_onnx_model
from platform_assets.lib.embedding.verification import (
    EXACT_MEAN_COSINE,
    EXACT_MIN_COSINE,
    INT8_FLOOR_MEAN_COSINE,
    agrees_exactly,
    use_verified_fp16,
)

logger = logging.getLogger("platform_assets.embedding")


class BackendError(RuntimeError):
    """A backend cannot be used as configured (unknown name, failed export or verification)."""


def normalise_backend(value: str | None) -> str:
    """A backend name, validated by config; None means PLATFORM_EMBED_BACKEND (config
    validates that variable itself, default auto)."""
    if value is None or not str(value).strip():
        return get_settings().embed_backend
    try:
        return embed_backend_name(str(value))
    except ValueError as err:
        raise BackendError(str(err)) from None


@dataclass(frozen=True)
class BackendSpec:
    """The backend a process resolved: small and picklable, so Ray actors load it without resolving again."""

    backend: str  # torch | onnx | onnx-int8
    device: str  # cpu | cuda
    space_id: str
    model_file: str | None = None
    model_size: int | None = None
    cache_key: str | None = None
    agreement: dict[str, Any] | None = field(default=None, compare=False)
    reason: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """What computes the vectors, e.g. onnx-fp32, onnx-int8, torch-fp32, torch-fp16-cuda."""
        if self.backend == "torch":
            return "torch-fp32" if self.device == "cpu" else f"torch-fp16-{self.device}"
        return "onnx-int8" if self.backend == "onnx-int8" else "onnx-fp32"

    @property
    def default_batch_size(self) -> int:
        """Texts per model call: large on a GPU (fp16 fits 512 review texts easily), 64 on CPU."""
        return 512 if self.device != "cpu" else 64

    def to_dict(self) -> dict[str, Any]:
        """Plain values for Ray actor constructor arguments."""
        return asdict(self)

    def load(self, threads: int | None = None) -> Encoder:
        """Build the encoder in this process (an export is only loaded here, or rebuilt if this node lacks it)."""
        if self.backend == "torch":
            encoder = TorchEncoder(device=self.device, threads=threads)
            if self.device != "cpu":
                use_verified_fp16(encoder)
            return encoder
        model_file = Path(self.model_file or "")
        if not (model_file.is_file() and model_file.stat().st_size == self.model_size):
            # A Ray worker on another node has no copy of the driver's cache: build the same export here, but
            # only if this node's libraries give the same cache key (else its vectors could differ).
            if cache_key() != self.cache_key:
                raise BackendError(
                    f"{self.name}: this process's model or library versions differ from the driver's "
                    "(cache key mismatch); install the same versions on every node"
                )
            model_file, _ = ensure_onnx_model(int8=self.backend == "onnx-int8")
        return OnnxEncoder(model_file, name=self.name, space_id=self.space_id, threads=threads)


@lru_cache(maxsize=4)
def load_encoder(spec: BackendSpec) -> Encoder:
    """One encoder per resolved backend in this process (queries, and small batches embedded in-process)."""
    return spec.load()


def cuda_available() -> bool:
    """True when this process can use a CUDA GPU (torch is imported only where an NVIDIA driver exists)."""
    if not (Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))):
        # No NVIDIA driver: skip importing torch (1-2 s), so an ONNX process never loads it.
        return False
    import torch

    return bool(torch.cuda.is_available())


def _onnx_spec(int8: bool) -> BackendSpec:
    fp32_file, manifest = ensure_onnx_model(int8=False)
    agreement = manifest["agreement"]
    if not agrees_exactly(agreement):
        raise BackendError(
            f"the ONNX export disagrees with torch on the verification sample "
            f"(mean cosine {agreement['mean_cosine']}, min {agreement['min_cosine']}; need >= "
            f"{EXACT_MEAN_COSINE} and >= {EXACT_MIN_COSINE}); see {fp32_file}.json"
        )
    if not int8:
        return BackendSpec(
            backend="onnx",
            device="cpu",
            space_id=FP32_SPACE,
            model_file=str(fp32_file),
            model_size=manifest["size"],
            cache_key=manifest["cache_key"],
            agreement=agreement,
            reason=f"ONNX fp32 verified against torch: mean cosine {agreement['mean_cosine']}",
        )
    int8_file, int8_manifest = ensure_onnx_model(int8=True)
    int8_agreement = int8_manifest["agreement"]
    if int8_agreement["mean_cosine"] < INT8_FLOOR_MEAN_COSINE:
        raise BackendError(
            f"the int8 model is broken: mean cosine to torch {int8_agreement['mean_cosine']} "
            f"< {INT8_FLOOR_MEAN_COSINE}; see {int8_file}.json"
        )
    return BackendSpec(
        backend="onnx-int8",
        device="cpu",
        space_id=INT8_SPACE,
        model_file=str(int8_file),
        model_size=int8_manifest["size"],
        cache_key=int8_manifest["cache_key"],
        agreement=int8_agreement,
        reason=f"int8 requested (opt-in; mean cosine to torch {int8_agreement['mean_cosine']}, "
        f"min {int8_agreement['min_cosine']})",
    )


def resolve_backend(requested: str | None = None, *, device: str | None = None) -> BackendSpec:
    """The backend that will actually run for `requested` (None: PLATFORM_EMBED_BACKEND, default auto).

    `device`: where the encoder will run ("cpu" or "cuda"); None means CUDA when this process sees a GPU.
    `auto` is torch fp16 on a GPU, else ONNX fp32 when its export verifies (mean cosine >= 0.999), else torch
    with a warning. `onnx` that fails verification raises BackendError; `onnx-int8` records its agreement.
    The export and verification run once per cache directory; the result is remembered for the process.
    """
    name = normalise_backend(requested)
    target = device or ("cuda" if cuda_available() else "cpu")
    return _resolve(name, target, str(get_settings().model_cache_dir))


@lru_cache(maxsize=16)
def _resolve(name: str, device: str, cache_root: str) -> BackendSpec:  # cache_root: part of the memo key
    if name == "torch" or (name == "auto" and device != "cpu"):
        return BackendSpec(
            backend="torch",
            device=device,
            space_id=FP32_SPACE,
            reason="torch requested" if name == "torch" else f"a GPU ({device}) is present: torch fp16",
        )
    if name in ("onnx", "onnx-int8"):
        return _onnx_spec(int8=name == "onnx-int8")
    try:
        return _onnx_spec(int8=False)
    except Exception as err:  # auto falls back to the reference backend, loudly
        logger.warning(f"embedding backend auto: ONNX is not usable ({err}); using torch fp32")
        return BackendSpec(backend="torch", device="cpu", space_id=FP32_SPACE, reason=f"ONNX unusable: {err}")


def forget_resolved_backends() -> None:
    """Drop this process's memory of resolved backends, so the next resolve reads the cache on disk again.

    For a long-lived process whose export cache was changed underneath it (deleted, or rebuilt by another
    version); the tests use it to make each resolve go back to disk.
    """
    _resolve.cache_clear()


def backend_for_space(space_id: str) -> str:
    """A backend name whose vectors live in `space_id` (to embed queries for a table written in it)."""
    if space_id == INT8_SPACE:
        return "onnx-int8"
    if space_id == FP32_SPACE:
        configured = get_settings().embed_backend
        return configured if configured != "onnx-int8" else "auto"
    raise BackendError(f"unknown embedding space {space_id!r}; known: {FP32_SPACE}, {INT8_SPACE}")
