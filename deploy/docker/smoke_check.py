"""Build-time check of the user-code image: the code location loads and the packaged model embeds offline.

Run by deploy/Dockerfile as the image's non-root user, with HF_HUB_OFFLINE=1 and no network expected: if
the model were missing from site-packages, or anything tried to reach a model hub, the build fails here
instead of the first embedding run in production. A script, not `python -c`: pyspark mistakes `-c` runs that
import great_expectations for doctests and exits 0.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Exit status 0 when the image is usable; a message on stderr otherwise."""
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        print("HF_HUB_OFFLINE must be 1 in the image", file=sys.stderr)
        return 1

    from platform_assets.definitions import defs

    jobs = sorted(job.name for job in defs.resolve_all_job_defs())
    if "reviews_job" not in jobs:
        print(f"reviews_job missing from the code location (jobs: {jobs})", file=sys.stderr)
        return 1

    import numpy as np

    from platform_assets.lib.embedding import EMBEDDING_DIM, TorchEncoder, model_dir

    vectors = TorchEncoder(device="cpu", threads=1).encode(
        ["battery dies too fast", "the battery drains quickly"]
    )
    unit_length = np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    if vectors.shape != (2, EMBEDDING_DIM) or not unit_length:
        print(f"unexpected embeddings {vectors.shape} from {model_dir()}", file=sys.stderr)
        return 1
    print(f"ok: {len(jobs)} jobs, model at {model_dir()}, {EMBEDDING_DIM}-d unit vectors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
