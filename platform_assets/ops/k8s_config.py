"""Kubernetes shapes that live in code, not in Helm values: the embedding step's pod, as dagster-k8s op tags.

With the K8s run launcher and dagster-k8s' `k8s_job_executor`, every step runs in a pod of its own, and the op
tag `dagster-k8s/config` shapes that pod (deploy/README.md, "Per-step resources"). These shapes matter when the
embedding step runs a local Ray inside its pod (RAY_ADDRESS unset); with the production default
(RAY_ADDRESS=http://platform-ray-head-svc:8265) it runs as a Ray job on the KubeRay cluster and its pod holds
no data. For a local Ray the pod itself needs the compute:

- `EMBEDDING_STEP_K8S_CONFIG`: CPU embedding, 4 cores for the model actors and memory for the texts and the
  collected vectors (1M x 384 float32 is 1.5 GB).
- `EMBEDDING_STEP_GPU_K8S_CONFIG`: the same on a GPU node, one `nvidia.com/gpu` (run the job with the embedder's
  `gpus_per_actor: 1`).

The platform/compute=embedding tag is what the run queue's tag concurrency limit counts (deploy/helm/values.yaml).
Pure data: importing this module imports nothing heavy.
"""

from __future__ import annotations

import copy
from typing import Any

COMPUTE_TAG = "platform/compute"
EMBEDDING = "embedding"
K8S_CONFIG_TAG = "dagster-k8s/config"
# The label every platform pod carries; the NetworkPolicies in deploy/kustomize admit only pods that have it.
MEMBER_LABEL = {"platform-assets/member": "true"}

_GPU_NODE = {
    # The NVIDIA GPU operator labels GPU nodes with this; clusters that taint GPU nodes use this toleration.
    "node_selector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}

# CPU limits equal to the requests: a local Ray sizes itself from the container's CPU quota, and without one
# it would see (and plan for) every core of the node.
EMBEDDING_STEP_K8S_CONFIG: dict[str, Any] = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "4", "memory": "8Gi"},
            "limits": {"cpu": "4", "memory": "12Gi"},
        },
    },
    "pod_template_spec_metadata": {"labels": {**MEMBER_LABEL, "platform-assets/compute": EMBEDDING}},
}

EMBEDDING_STEP_GPU_K8S_CONFIG: dict[str, Any] = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
        },
    },
    "pod_spec_config": copy.deepcopy(_GPU_NODE),
    "pod_template_spec_metadata": {"labels": {**MEMBER_LABEL, "platform-assets/compute": EMBEDDING}},
}


def embedding_op_tags(gpu: bool = False) -> dict[str, Any]:
    """The embedding asset's op tags: its compute class and its pod shape under the k8s_job_executor."""
    config = EMBEDDING_STEP_GPU_K8S_CONFIG if gpu else EMBEDDING_STEP_K8S_CONFIG
    return {COMPUTE_TAG: EMBEDDING, K8S_CONFIG_TAG: copy.deepcopy(config)}
