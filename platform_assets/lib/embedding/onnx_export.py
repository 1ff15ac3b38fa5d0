"""The ONNX models: the fp32 export of the packaged model and its int8 quantisation, built once per cache key.

fp32: `torch.onnx.export(..., dynamo=True)` of the BERT inside sentence-transformers, with dynamic batch and
sequence axes; pooling and normalisation run in numpy (encoders.OnnxEncoder). The legacy exporter
(`dynamo=False`) gives wrong vectors at sequence lengths other than the traced one.

Why not sentence-transformers' own `SentenceTransformer(path, backend="onnx")`: it exports through
`optimum-onnx`, whose every release requires transformers < 4.58, while sentence-transformers 6 requires
transformers >= 5. Installing it means an older sentence-transformers and transformers, for the same vectors
at about the same speed (docs/performance.md, "ONNX: hand-written export or sentence-transformers' route").

int8: ONNX Runtime's dynamic quantisation of the weight MatMuls, per output channel (opt-in; see policy.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platform_assets.lib.embedding.encoders import OnnxEncoder
from platform_assets.lib.embedding.export_cache import (
    PROCESS_LOCK,
    build_artifact,
    build_lock,
    cache_dir,
    cache_key,
    valid_manifest,
)
from platform_assets.lib.embedding.model import FP32_SPACE, INT8_SPACE, max_seq_length, model_dir
from platform_assets.lib.embedding.verification import agreement_with_torch

FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


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


def _verifier(space_id: str) -> Callable[[Path], dict[str, Any]]:
    """Measures a freshly built file against torch fp32 on the verification sample."""

    def verify(model_file: Path) -> dict[str, Any]:
        candidate = OnnxEncoder(model_file, name=model_file.stem, space_id=space_id)
        return agreement_with_torch(candidate)

    return verify


def ensure_onnx_model(int8: bool = False, root: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The cached fp32 (or int8) ONNX model and its manifest, exporting and verifying it first if needed.

    The manifest's `agreement` holds the model's mean and min cosine to torch on the verification sample;
    whether that is good enough is the caller's decision (see policy.resolve_backend).
    """
    directory = cache_dir(root)
    key = cache_key()
    fp32_file = directory / FP32_FILE
    with PROCESS_LOCK:  # threads of one process; the file lock covers other processes
        manifest = valid_manifest(fp32_file, key)
        if manifest is None:
            with build_lock(directory):
                manifest = valid_manifest(fp32_file, key)  # another process may have built it meanwhile
                if manifest is None:
                    manifest = build_artifact(fp32_file, key, _export_fp32, _verifier(FP32_SPACE))
        if not int8:
            return fp32_file, manifest
        int8_file = directory / INT8_FILE
        int8_manifest = valid_manifest(int8_file, key, source_sha256=manifest["sha256"])
        if int8_manifest is None:
            with build_lock(directory):
                int8_manifest = valid_manifest(int8_file, key, source_sha256=manifest["sha256"])
                if int8_manifest is None:
                    int8_manifest = build_artifact(
                        int8_file,
                        key,
                        lambda tmp: _quantise_int8(fp32_file, tmp),
                        _verifier(INT8_SPACE),
                        source_sha256=manifest["sha256"],
                    )
        return int8_file, int8_manifest
