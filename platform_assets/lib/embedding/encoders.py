"""The encoders: texts in, L2-normalised float32 vectors out, with torch (sentence-transformers) or an exported
model on ONNX Runtime.

An encoder only encodes; which one runs, and whether it may, is decided in policy.py and verification.py.
torch, onnxruntime, tokenizers and sentence_transformers are imported inside the constructors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from platform_assets.lib.embedding.model import EMBEDDING_DIM, FP32_SPACE, max_seq_length, model_dir


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text, in input order)."""

    name: str
    space_id: str

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed `texts`: an array of shape (len(texts), EMBEDDING_DIM), float32, unit rows."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """`vectors` as float32 rows of unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def default_threads() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class TorchEncoder:
    """sentence-transformers in fp32 on CPU or CUDA; on CUDA it can run in fp16 (see `use_fp16`)."""

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads and device == "cpu":
            # Several torch processes that each take every core slow each other down; the caller decides.
            torch.set_num_threads(threads)
        self.device = device
        self.model = SentenceTransformer(str(model_dir()), device=device)
        self.precision = "fp32"
        self.space_id = FP32_SPACE
        self.default_batch_size = 64 if device == "cpu" else 512

    @property
    def name(self) -> str:
        """What computes the vectors, e.g. torch-fp32 or torch-fp16-cuda."""
        return f"torch-{self.precision}" + ("" if self.device == "cpu" else f"-{self.device.split(':')[0]}")

    def use_fp16(self, enabled: bool) -> None:
        """Run the model in fp16 (enabled) or fp32; fp16 only on a GPU (CPU fp16 is slow and inexact)."""
        if enabled and self.device != "cpu":
            self.model.half()
            self.precision = "fp16"
        else:
            self.model.float()
            self.precision = "fp32"

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed `texts` with sentence-transformers (it sorts by length inside the call)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.default_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        # fp16 output is re-normalised in float32 so every backend hands out unit float32 rows.
        return l2_normalise(vectors)


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
        options.intra_op_num_threads = threads or default_threads()
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
            out[rows] = l2_normalise(pooled)
        return out
