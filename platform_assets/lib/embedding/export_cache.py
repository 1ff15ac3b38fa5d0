"""The on-disk cache of exported models: where an export lives, how it is keyed, and how it is written safely.

Exports live under `PlatformSettings.model_cache_dir` (`$PLATFORM_DATA_DIR/models` unless
`PLATFORM_MODEL_CACHE_DIR` is set), in a directory keyed on the model files' content and the versions of the
libraries that produce and run them, so a stale export is never used. Each cached file has a JSON manifest
beside it (its sha256, how long it took, and its agreement with torch on the verification sample); the
manifest is written last, so a model file without a matching manifest is rebuilt. Builds hold a file lock so
that Ray actors or several processes starting together build once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import lru_cache
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from platform_assets.lib.config import get_settings
from platform_assets.lib.embedding.model import MODEL_SLUG, model_dir

logger = logging.getLogger("platform_assets.embedding")

# Bump when the export or quantisation code changes: it is part of the cache key.
EXPORT_FORMAT = 1
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

# Threads of one process take this before the file lock (flock does not exclude threads of one process).
PROCESS_LOCK = threading.Lock()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content, in hex."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@lru_cache(maxsize=4)
def _model_fingerprint(directory: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(directory)).encode() + b"\x00" + sha256_file(path).encode())
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


def valid_manifest(model_file: Path, key: str, source_sha256: str | None = None) -> dict[str, Any] | None:
    """The manifest when the file is the one it describes (same key, size and sha256), else None.

    `source_sha256`: for a file derived from another (int8 from fp32), the source it must have been made from.
    """
    manifest = read_manifest(model_file)
    if manifest is None or not model_file.is_file():
        return None
    reason = None
    if manifest.get("cache_key") != key:
        reason = "it was built for another model or library version"
    elif model_file.stat().st_size != manifest.get("size") or sha256_file(model_file) != manifest.get(
        "sha256"
    ):
        reason = "its content does not match its manifest (corrupt or partly written)"
    elif source_sha256 is not None and manifest.get("source_sha256") != source_sha256:
        reason = "it was derived from another source file"
    if reason:
        logger.warning(f"cached model {model_file} is not usable: {reason}; rebuilding it")
        return None
    return manifest


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the cache directory, so concurrent processes build once, one after another."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _write_manifest(model_file: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (readers never see a partial file)."""
    target = _manifest_path(model_file)
    tmp = _temporary_name(target)
    try:
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def build_artifact(
    model_file: Path,
    key: str,
    build: Callable[[Path], None],
    verify: Callable[[Path], dict[str, Any]],
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """Build one file atomically, verify it, then commit its manifest (the last write); the manifest.

    `build(tmp)` writes the file; `verify(tmp)` returns its agreement with torch, recorded in the manifest.
    The caller holds `build_lock` on the directory.
    """
    started = time.perf_counter()
    logger.info(f"building {model_file.name} for {MODEL_SLUG} in {model_file.parent}")
    tmp = _temporary_name(model_file)
    try:
        build(tmp)
        build_s = time.perf_counter() - started
        agreement = verify(tmp)
        manifest = {
            "cache_key": key,
            "file": model_file.name,
            "size": tmp.stat().st_size,
            "sha256": sha256_file(tmp),
            "source_sha256": source_sha256,
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
    logger.info(f"built {model_file.name} in {manifest['build_seconds']} s; agreement with torch {agreement}")
    return manifest
