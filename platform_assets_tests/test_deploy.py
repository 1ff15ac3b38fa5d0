"""deploy/ validated offline: no cluster, no registry, no Docker daemon.

- every built-in manifest, and the kustomize build, against the Kubernetes JSON schemas (`kubernetes-validate
  --strict`, which rejects unknown fields);
- the KubeRay RayCluster (a CRD kubernetes-validate cannot check) against a structural schema vendored from
  KubeRay's API types, and its pod templates against the bundled PodTemplateSpec schema;
- the Helm values against the Dagster chart's documented keys (a subset of the chart's values.schema.json,
  vendored below);
- the run and step pods the K8s run launcher would create from those values and the embedding op tags;
- the Dockerfile, its ignore file, the secrets policy (references only) and the network policies.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from platform_assets.ops.k8s_config import (
    EMBEDDING_STEP_GPU_K8S_CONFIG,
    EMBEDDING_STEP_K8S_CONFIG,
    MEMBER_LABEL,
    embedding_op_tags,
)
from platform_assets_tests.conftest import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
PRODUCTION_YAML = DEPLOY / "dagster.production.yaml"
BIN = Path(sys.executable).parent
# The oldest Kubernetes still commonly run and the newest kubernetes-validate bundles.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
NAMESPACE = "platform"
MEMBER_KEY, MEMBER_VALUE = next(iter(MEMBER_LABEL.items()))
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}


# ---------------------------------------------------------------------------------------------------------------
# Loading and rendering
# ---------------------------------------------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    return sorted(p for p in KUSTOMIZE.rglob("*.yaml") if p.name != "kustomization.yaml")


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())


@cache
def cluster_scoped_kinds() -> frozenset[str]:
    return frozenset(
        {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass"}
    )


def render_kustomization() -> list[dict[str, Any]]:
    """The kustomization rendered in Python: resources in order, namespace, labels and image tags applied.

    The fallback where neither kubectl nor kustomize exists, and the reference kubectl's build is compared with.
    """
    spec = kustomization()
    documents: list[dict[str, Any]] = []
    for resource in spec["resources"]:
        documents.extend(yaml_documents(KUSTOMIZE / resource))
    labels = {k: v for entry in spec.get("labels", []) for k, v in entry["pairs"].items()}
    tags = {image["name"]: image["newTag"] for image in spec.get("images", [])}
    for doc in documents:
        metadata = doc.setdefault("metadata", {})
        if doc["kind"] == "Namespace":
            metadata["name"] = spec["namespace"]
        elif doc["kind"] not in cluster_scoped_kinds():
            metadata["namespace"] = spec["namespace"]
        metadata.setdefault("labels", {}).update(labels)
        for container in containers_of(doc):
            name = container["image"].rsplit(":", 1)[0]
            if name in tags:
                container["image"] = f"{name}:{tags[name]}"
    return documents


def pod_templates(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every pod template in a workload or RayCluster."""
    if doc["kind"] in POD_TEMPLATE_KINDS:
        return [doc["spec"]["template"]]
    if doc["kind"] == "RayCluster":
        spec = doc["spec"]
        return [spec["headGroupSpec"]["template"]] + [
            group["template"] for group in spec.get("workerGroupSpecs", [])
        ]
    return []


def containers_of(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for template in pod_templates(doc):
        yield from template["spec"].get("containers", [])
        yield from template["spec"].get("initContainers", [])


def kubectl_build() -> list[dict[str, Any]] | None:
    """`kubectl kustomize` (or `kustomize build`) output, or None when neither tool exists."""
    if kubectl := shutil.which("kubectl"):
        command = [kubectl, "kustomize", str(KUSTOMIZE)]
    elif kustomize := shutil.which("kustomize"):
        command = [kustomize, "build", str(KUSTOMIZE)]
    else:
        return None
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


@cache
def k8s_definitions(version: str) -> dict[str, Any]:
    """The bundled strict Kubernetes definitions of `version` (every $def forbids unknown fields)."""
    return kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )


K8S_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"  # the $id of the bundled definitions


def k8s_registry(version: str) -> Registry:
    """A JSON-schema registry that resolves `K8S_DEFINITIONS_URI#/$defs/<name>` to the Kubernetes definitions."""
    definitions = k8s_definitions(version)
    assert definitions["$id"] == K8S_DEFINITIONS_URI
    return Resource.from_contents(definitions) @ Registry()


def k8s_ref(name: str) -> dict[str, str]:
    return {"$ref": f"{K8S_DEFINITIONS_URI}#/$defs/{name}"}


def validation_errors(instance: Any, schema: Mapping[str, Any], version: str = K8S_VERSIONS[-1]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, registry=k8s_registry(version))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def pod_template_errors(template: Mapping[str, Any], version: str) -> list[str]:
    """A pod template against the bundled strict PodTemplateSpec schema."""
    return validation_errors(template, k8s_ref("io.k8s.api.core.v1.PodTemplateSpec"), version)


# ---------------------------------------------------------------------------------------------------------------
# kubernetes-validate --strict on every built-in manifest and on the build
# ---------------------------------------------------------------------------------------------------------------


def test_every_built_in_manifest_passes_kubernetes_validate_strict(tmp_path: Path) -> None:
    built = tmp_path / "kustomize-build.yaml"
    built.write_text(yaml.safe_dump_all(kubectl_build() or render_kustomization(), sort_keys=False))
    files = [*manifest_files(), built]
    built_in = [
        doc for path in files for doc in yaml_documents(path) if not doc["apiVersion"].startswith("ray.io/")
    ]
    assert len(built_in) >= 20
    for version in K8S_VERSIONS:
        completed = subprocess.run(
            [str(BIN / "kubernetes-validate"), "--strict", "-k", version, *map(str, files)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        assert "ERROR" not in output, output
        assert output.count(" passed for resource ") == len(built_in), output
        # The CRD is the only thing kubernetes-validate cannot check (it warns): the tests below do that.
        warnings = [line for line in output.splitlines() if line.startswith("WARN")]
        assert warnings and all("RayCluster" in line for line in warnings), output


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validator really is strict: a misspelt field in a Deployment fails."""
    [deployment] = yaml_documents(KUSTOMIZE / "minio" / "deployment.yaml")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"memory": "1Gi"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


# ---------------------------------------------------------------------------------------------------------------
# kustomize
# ---------------------------------------------------------------------------------------------------------------


def identities(documents: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str | None]]:
    return sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in documents)


def test_the_kustomization_lists_every_manifest_and_builds() -> None:
    listed = {KUSTOMIZE / resource for resource in kustomization()["resources"]}
    assert listed == set(manifest_files()), (
        "a manifest is missing from kustomization.yaml, or listed but absent"
    )
    rendered = render_kustomization()
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "platform-assets"
    for container in (c for doc in rendered for c in containers_of(doc)):
        assert not container["image"].endswith(":latest") and ":" in container["image"], container["image"]


def test_the_metadata_center_requires_the_key_for_reads_in_production() -> None:
    """The embedded default leaves reads open; the deployed service must not: METADATA_CENTER_REQUIRE_KEY_FOR_READS
    is true on its container, set there or through a ConfigMap it loads."""
    documents = render_kustomization()
    [deployment] = [
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "metadata-center"
    ]
    [container] = [c for c in containers_of(deployment) if c["name"] == "metadata-center"]
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    value = str(env.get("METADATA_CENTER_REQUIRE_KEY_FOR_READS", "")).strip().lower()
    assert value in ("1", "true", "yes", "on"), value


def test_kubectl_kustomize_builds_what_the_kustomization_lists() -> None:
    built = kubectl_build()
    if built is None:
        pytest.skip("neither kubectl nor kustomize is installed: the Python rendering above stands in for it")
    assert identities(built) == identities(render_kustomization())
    images = {c["image"] for doc in built for c in containers_of(doc)}
    assert "registry.example.com/platform-assets:0.1.0" in images
    assert "registry.example.com/platform-assets-gpu:0.1.0" in images


# ---------------------------------------------------------------------------------------------------------------
# The RayCluster
# ---------------------------------------------------------------------------------------------------------------

# Structure of the KubeRay RayCluster CR, vendored from KubeRay's API types
# (ray-project/kuberay, ray-operator/apis/ray/v1/raycluster_types.go at commit 026f143: RayClusterSpec,
# HeadGroupSpec, WorkerGroupSpec, AutoscalerOptions). Every field listed there is allowed, nothing else; pod
# templates are left to the Kubernetes PodTemplateSpec schema (checked separately).
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
RAYCLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": k8s_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        "spec": {
            "type": "object",
            "required": ["headGroupSpec"],
            "additionalProperties": False,
            "properties": {
                "headGroupSpec": {
                    "type": "object",
                    "required": ["rayStartParams", "template"],
                    "additionalProperties": False,
                    "properties": {
                        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
                        "headService": {"type": "object"},
                        "enableIngress": {"type": "boolean"},
                        "rayStartParams": _STRING_MAP,
                        "template": {"type": "object"},
                    },
                },
                "workerGroupSpecs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"],
                        "additionalProperties": False,
                        "properties": {
                            "groupName": {"type": "string", "minLength": 1},
                            "replicas": {"type": "integer", "minimum": 0},
                            "minReplicas": {"type": "integer", "minimum": 0},
                            "maxReplicas": {"type": "integer", "minimum": 0},
                            "numOfHosts": {"type": "integer", "minimum": 1},
                            "rayStartParams": _STRING_MAP,
                            "template": {"type": "object"},
                            "scaleStrategy": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "workersToDelete": {"type": "array", "items": {"type": "string"}}
                                },
                            },
                        },
                    },
                },
                "rayVersion": {"type": "string"},
                "enableInTreeAutoscaling": {"type": "boolean"},
                "autoscalerOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "resources": k8s_ref("io.k8s.api.core.v1.ResourceRequirements"),
                        "image": {"type": "string"},
                        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                        "env": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.EnvVar")},
                        "envFrom": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.EnvFromSource")},
                        "volumeMounts": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.VolumeMount")},
                        "securityContext": k8s_ref("io.k8s.api.core.v1.SecurityContext"),
                        "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
                        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                    },
                },
                "headServiceAnnotations": _STRING_MAP,
                "suspend": {"type": "boolean"},
            },
        },
    },
}


def raycluster_errors(cluster: Mapping[str, Any], version: str = K8S_VERSIONS[-1]) -> list[str]:
    """Structure errors, pod template errors and replica-bound errors of a RayCluster."""
    errors = validation_errors(cluster, RAYCLUSTER_SCHEMA, version)
    spec = cluster.get("spec", {})
    for where, template in [("headGroupSpec", spec.get("headGroupSpec", {}).get("template"))] + [
        (f"workerGroupSpecs/{g.get('groupName')}", g.get("template"))
        for g in spec.get("workerGroupSpecs", [])
    ]:
        if template is not None:
            errors += [f"{where}/template/{error}" for error in pod_template_errors(template, version)]
    for group in spec.get("workerGroupSpecs", []):
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 0)
        if not low <= group.get("replicas", low) <= high:
            errors.append(f"{group.get('groupName')}: replicas outside [minReplicas, maxReplicas]")
    return errors


@cache
def raycluster() -> dict[str, Any]:
    [cluster] = yaml_documents(KUSTOMIZE / "ray" / "raycluster.yaml")
    return cluster


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_raycluster_has_kuberay_structure_and_valid_pod_templates(version: str) -> None:
    assert raycluster_errors(raycluster(), version) == []


def test_the_raycluster_has_autoscaling_cpu_and_gpu_groups_on_the_platform_image() -> None:
    spec = raycluster()["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    # The cluster must run the Ray the platform's code was written against.
    assert spec["rayVersion"] == importlib.metadata.version("ray")
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu-workers", "gpu-workers"}
    for group in groups.values():
        assert group["maxReplicas"] > group["minReplicas"], "a group that cannot grow does not autoscale"
    gpu = groups["gpu-workers"]["template"]["spec"]
    [gpu_container] = gpu["containers"]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert gpu_container["image"].startswith("registry.example.com/platform-assets-gpu:")
    [cpu_container] = groups["cpu-workers"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in cpu_container["resources"]["limits"]
    for template in pod_templates(raycluster()):
        assert template["metadata"]["labels"][MEMBER_KEY] == MEMBER_VALUE
        for container in template["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            # runtime_env.py defaults this to 0 (loopback only) for laptops; a cluster node must not.
            assert env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "1"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["spec"].update(workerGroupSpec=c["spec"].pop("workerGroupSpecs")), "workerGroupSpec"),
        (lambda c: c["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}), "0 is not of type"),
        (lambda c: c["spec"]["workerGroupSpecs"][0].update(minReplicas=5, replicas=1), "replicas outside"),
        (
            lambda c: c["spec"]["workerGroupSpecs"][1]["template"]["spec"].update(nodeSelectr={}),
            "nodeSelectr",
        ),
        (lambda c: c["spec"]["headGroupSpec"]["template"]["spec"].pop("containers"), "containers"),
    ],
)
def test_raycluster_validation_catches_broken_clusters(mutate: Any, expected: str) -> None:
    broken = copy.deepcopy(raycluster())
    mutate(broken)
    errors = raycluster_errors(broken)
    assert any(expected in error for error in errors), errors


def test_the_documented_kuberay_interactive_job_renders_a_valid_rayjob() -> None:
    """deploy/README.md's KubeRayInteractiveJob option, built from the same group shapes, renders cleanly."""
    import dagster as dg
    from dagster_ray.kuberay import KubeRayInteractiveJob, RayClusterSpec
    from dagster_ray.kuberay.resources.rayjob import InteractiveRayJobConfig, InteractiveRayJobSpec

    shapes = raycluster()["spec"]
    resource = KubeRayInteractiveJob(
        image="registry.example.com/platform-assets:0.1.0",
        ray_job=InteractiveRayJobConfig(
            metadata={"namespace": NAMESPACE},
            spec=InteractiveRayJobSpec(
                ray_cluster_spec=RayClusterSpec(
                    head_group_spec=shapes["headGroupSpec"],
                    worker_group_specs=shapes["workerGroupSpecs"],
                    enable_in_tree_autoscaling=True,
                )
            ),
        ),
    )
    manifest = resource.ray_job.to_k8s(dg.build_asset_context(), image=resource.image, labels=MEMBER_LABEL)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    assert manifest["spec"]["submissionMode"] == "InteractiveMode"
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "per-run"}}
    cluster["spec"] = manifest["spec"]["rayClusterSpec"]
    assert raycluster_errors(cluster) == []


def rayjob_template() -> dict[str, Any]:
    """The per-step RayJob template, as the embedding step reads it from the mounted ConfigMap."""
    [config_map] = yaml_documents(KUSTOMIZE / "ray" / "rayjob-template.yaml")
    [(file_name, text)] = config_map["data"].items()
    assert file_name == "embed-rayjob.yaml"
    return yaml.safe_load(text)


def test_the_rayjob_template_brings_the_platform_clusters_shape_and_a_valid_cluster() -> None:
    template = rayjob_template()
    assert (template["apiVersion"], template["kind"]) == ("ray.io/v1", "RayJob")
    spec = template["spec"]
    # KubeRay submits over HTTP (no submitter pod) and deletes the step's cluster when the job ends.
    assert spec["submissionMode"] == "HTTPMode" and spec["shutdownAfterJobFinishes"] is True
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "per-step"}}
    cluster["spec"] = spec["rayClusterSpec"]
    assert raycluster_errors(cluster) == []
    # The RayCluster platform-ray's spec, plus the label the per-run NetworkPolicy selects: they cannot drift.
    shared = copy.deepcopy(spec["rayClusterSpec"])
    for template_spec in pod_templates(cluster):
        assert template_spec["metadata"]["labels"].pop("platform-assets/ray-per-run") == "true"
    for group in [shared["headGroupSpec"], *shared["workerGroupSpecs"]]:
        group["template"]["metadata"]["labels"].pop("platform-assets/ray-per-run")
    assert shared == raycluster()["spec"]


def test_the_embedding_step_fills_the_rayjob_template_with_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What PipesKubeRayJobClient sends: the template, with the step's entrypoint and driver resources merged in
    by dagster-ray itself; the step reads the mounted file and refuses a manifest that is not a RayJob."""
    from dagster_ray.kuberay.pipes import _merge_submit_params_into_ray_job

    from platform_assets.defs.reviews.assets import embed_job_arguments
    from platform_assets.lib.embedding import TextEmbedder
    from platform_assets.lib.ray_jobs import job_params, read_rayjob_template
    from platform_assets.lib.ray_resource import RayResource
    from platform_assets.lib.vector_store import LanceDBIOManager

    path = tmp_path / "embed-rayjob.yaml"
    path.write_text(yaml.safe_dump(rayjob_template()))
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "platform"))
    arguments = embed_job_arguments(
        "2026/12/reviews.csv",
        TextEmbedder(ray=RayResource(), gpus_per_actor=1),
        LanceDBIOManager(uri="s3://data-lake/lancedb"),
    )
    params = job_params("platform_assets.jobs.embed", arguments)
    manifest = _merge_submit_params_into_ray_job(read_rayjob_template(path), params)
    assert manifest["spec"]["entrypoint"] == (
        "python -m platform_assets.jobs.embed --delivery 2026/12/reviews.csv --gpus-per-actor 1.0 "
        "--lancedb-uri s3://data-lake/lancedb --index-min-rows 20000"
    )
    assert manifest["spec"]["entrypointNumCpus"] == 0
    assert yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])["env_vars"]["PLATFORM_LANCEDB_URI"]
    for broken, message in (
        ("kind: RayCluster\n", "is not a RayJob manifest"),
        ("kind: RayJob\nspec:\n  clusterSelector: {}\n", "spec.rayClusterSpec is missing"),
        ("kind: [\n", "cannot read a RayJob manifest"),
    ):
        path.write_text(broken)
        with pytest.raises(ValueError, match=message):
            read_rayjob_template(path)


def test_run_pods_reach_the_ray_cluster_and_may_manage_their_rayjobs() -> None:
    values = helm_values()
    [deployment] = values["dagster-user-deployments"]["deployments"]
    env = {entry["name"]: entry.get("value") for entry in deployment["env"]}
    # The job API of the head service KubeRay creates for the RayCluster (<name>-head-svc).
    assert env["RAY_ADDRESS"] == f"http://{raycluster()['metadata']['name']}-head-svc:8265"
    # Not in the ConfigMap the Ray pods load too.
    [env_map] = yaml_documents(KUSTOMIZE / "platform-env.yaml")
    assert "RAY_ADDRESS" not in env_map["data"]
    # The template is mounted where the documented PLATFORM_RAYJOB_TEMPLATE points.
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    [volume] = launcher["volumes"]
    assert volume["configMap"]["name"] == "platform-rayjob-template"
    [mount] = launcher["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == "/etc/platform/rayjob"
    # Dagster's service account (every Dagster pod's) is the one granted RayJobs.
    role, binding = yaml_documents(KUSTOMIZE / "ray" / "rayjob-rbac.yaml")
    [subject] = binding["subjects"]
    assert subject["name"] == values["global"]["serviceAccountName"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert any("rayjobs" in rule["resources"] and "create" in rule["verbs"] for rule in role["rules"])


# ---------------------------------------------------------------------------------------------------------------
# Helm values against the Dagster chart's documented keys
# ---------------------------------------------------------------------------------------------------------------

# A subset of the Dagster chart's values schema, vendored from dagster-io/dagster helm/dagster/values.schema.json
# (commit bdb8547: definitions Webserver, UserDeployments, UserDeployment, PostgreSQL, RunLauncher,
# K8sRunLauncherConfig, RunK8sConfig, ComputeLogManager, S3ComputeLogManager, Daemon, RunCoordinator,
# QueuedRunCoordinatorConfig, TagConcurrencyLimit, Retention, TickRetention, Telemetry, Global), with the keys of
# dagsterDaemon.runMonitoring / runRetries (free objects in the schema) from the template that reads them,
# helm/dagster/templates/configmap-instance.yaml (commit 835892b). "required" lists are left out: the chart's own
# values.yaml supplies every default, so an override file only has to use documented keys with the right types.
# Kubernetes-typed fields resolve to the bundled Kubernetes definitions.
_STR_OR_ENV = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {"env": {"type": "string"}},
            "required": ["env"],
            "additionalProperties": False,
        },
    ]
}
_INT_OR_ENV = {
    "anyOf": [
        {"type": "integer"},
        {
            "type": "object",
            "properties": {"env": {"type": "string"}},
            "required": ["env"],
            "additionalProperties": False,
        },
    ]
}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_IMAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "repository": {"type": "string"},
        "tag": {"type": ["string", "integer", "null"]},
        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    },
}
_ENV = {"anyOf": [_LABELS, {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.EnvVar")}]}
_ENV_CONFIG_MAPS = {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.ConfigMapEnvSource")}
_ENV_SECRETS = {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.SecretEnvSource")}
_POD_FIELDS = {
    "annotations": _LABELS,
    "nodeSelector": _LABELS,
    "affinity": k8s_ref("io.k8s.api.core.v1.Affinity"),
    "tolerations": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.Toleration")},
    "podSecurityContext": k8s_ref("io.k8s.api.core.v1.PodSecurityContext"),
    "securityContext": k8s_ref("io.k8s.api.core.v1.SecurityContext"),
    "resources": k8s_ref("io.k8s.api.core.v1.ResourceRequirements"),
    "livenessProbe": {"type": "object"},
    "readinessProbe": {"type": "object"},
    "startupProbe": {"type": "object"},
    "labels": _LABELS,
    "deploymentLabels": _LABELS,
    "volumeMounts": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.VolumeMount")},
    "volumes": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.Volume")},
    "schedulerName": {"type": ["string", "null"]},
    "env": _ENV,
    "envConfigMaps": _ENV_CONFIG_MAPS,
    "envSecrets": _ENV_SECRETS,
    "initContainerResources": k8s_ref("io.k8s.api.core.v1.ResourceRequirements"),
}
_TICK_RETENTION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "purgeAfterDays": {
            "anyOf": [
                {"type": "integer"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["skipped", "success", "failure", "started"],
                    "properties": {
                        k: {"type": "integer"} for k in ("skipped", "success", "failure", "started")
                    },
                },
            ]
        }
    },
}
DAGSTER_CHART_VALUES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        # Every top-level key of the chart (DagsterHelmValues); those this repository sets are detailed.
        **{
            key: {}
            for key in (
                "rabbitmq",
                "redis",
                "flower",
                "ingress",
                "imagePullSecrets",
                "scheduler",
                "pythonLogs",
                "busybox",
                "migrate",
                "serviceAccount",
                "concurrency",
                "additionalInstanceConfig",
            )
        },  # fmt: skip
        "global": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                k: {"type": "string"}
                for k in (
                    "postgresqlSecretName",
                    "dagsterHome",
                    "serviceAccountName",
                    "celeryConfigSecretName",
                )
            },
        },
        "generatePostgresqlPasswordSecret": {"type": "boolean"},
        "generateCeleryConfigSecret": {"type": "boolean"},
        "telemetry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}},
        },
        "postgresql": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "image": _IMAGE,
                "enabled": {"type": "boolean"},
                "postgresqlHost": {"type": "string"},
                "postgresqlUsername": {"type": "string"},
                "postgresqlPassword": {"type": "string"},
                "postgresqlDatabase": {"type": "string"},
                "postgresqlParams": {"type": "object"},
                "postgresqlScheme": {"type": "string"},
                "service": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"port": {"type": "integer"}},
                },
            },
        },
        "dagsterWebserver": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **_POD_FIELDS,
                "replicaCount": {"type": "integer", "minimum": 0},
                "image": _IMAGE,
                "nameOverride": {"type": "string"},
                "pathPrefix": {"type": ["string", "null"]},
                "service": {"type": "object"},
                "workspace": {"type": "object"},
                "enableReadOnly": {"type": "boolean"},
                "dbStatementTimeout": {"type": ["integer", "null"]},
                "dbPoolRecycle": {"type": ["integer", "null"]},
                "logLevel": {"type": ["string", "null"]},
            },
        },
        "dagster-user-deployments": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "enableSubchart": {"type": "boolean"},
                "imagePullSecrets": {
                    "type": "array",
                    "items": k8s_ref("io.k8s.api.core.v1.LocalObjectReference"),
                },
                "deployments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "image", "port"],
                        "properties": {
                            **_POD_FIELDS,
                            "name": {"type": "string"},
                            "image": _IMAGE,
                            "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
                            "codeServerArgs": {"type": "array", "items": {"type": "string"}},
                            "includeConfigInLaunchedRuns": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"enabled": {"type": "boolean"}},
                            },
                            "deploymentNamespace": {"type": "string"},
                            "port": {"type": "integer"},
                            "replicaCount": {"type": "integer"},
                            "initContainers": {"type": "array", "items": {"type": "object"}},
                            "sidecarContainers": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
        "runLauncher": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
                "config": {
                    "type": "object",
                    "properties": {
                        "k8sRunLauncher": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "image": {"anyOf": [_IMAGE, {"type": "null"}]},
                                "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                                "jobNamespace": {"type": ["string", "null"]},
                                "loadInclusterConfig": {"type": "boolean"},
                                "kubeconfigFile": {"type": ["string", "null"]},
                                "envConfigMaps": _ENV_CONFIG_MAPS,
                                "envSecrets": _ENV_SECRETS,
                                "envVars": {"type": "array", "items": {"type": "string"}},
                                "volumeMounts": {
                                    "type": "array",
                                    "items": k8s_ref("io.k8s.api.core.v1.VolumeMount"),
                                },
                                "volumes": {"type": "array", "items": k8s_ref("io.k8s.api.core.v1.Volume")},
                                "labels": _LABELS,
                                "failPodOnRunFailure": {"type": ["boolean", "null"]},
                                "resources": k8s_ref("io.k8s.api.core.v1.ResourceRequirements"),
                                "schedulerName": {"type": ["string", "null"]},
                                "securityContext": k8s_ref("io.k8s.api.core.v1.SecurityContext"),
                                "runK8sConfig": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        k: {"type": ["object", "null"]}
                                        for k in (
                                            "containerConfig",
                                            "podSpecConfig",
                                            "podTemplateSpecMetadata",
                                            "jobSpecConfig",
                                            "jobMetadata",
                                        )
                                    },
                                },
                            },
                        },
                    },
                },
            },
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "K8sRunLauncher"}}},
                    "then": {"properties": {"config": {"required": ["k8sRunLauncher"]}}},
                }
            ],
        },
        "computeLogManager": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {
                    "enum": [
                        "NoOpComputeLogManager",
                        "AzureBlobComputeLogManager",
                        "GCSComputeLogManager",
                        "S3ComputeLogManager",
                        "CustomComputeLogManager",
                    ]
                },
                "config": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "azureBlobComputeLogManager": {"type": ["object", "null"]},
                        "gcsComputeLogManager": {"type": ["object", "null"]},
                        "customComputeLogManager": {"type": ["object", "null"]},
                        "s3ComputeLogManager": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["bucket"],
                            "properties": {
                                "bucket": _STR_OR_ENV,
                                "localDir": _STR_OR_ENV,
                                "prefix": _STR_OR_ENV,
                                "useSsl": {"type": ["boolean", "null"]},
                                "verify": {"type": ["boolean", "null"]},
                                "verifyCertPath": _STR_OR_ENV,
                                "endpointUrl": _STR_OR_ENV,
                                "skipEmptyFiles": {"type": ["boolean", "null"]},
                                "uploadInterval": {"type": ["integer", "null"]},
                                "uploadExtraArgs": {"type": ["object", "null"]},
                                "showUrlOnly": {"type": ["boolean", "null"]},
                                "region": _STR_OR_ENV,
                            },
                        },
                    },
                },
            },
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "S3ComputeLogManager"}}},
                    "then": {"properties": {"config": {"required": ["s3ComputeLogManager"]}}},
                }
            ],
        },
        "dagsterDaemon": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **_POD_FIELDS,
                "enabled": {"type": "boolean"},
                "image": _IMAGE,
                "heartbeatTolerance": {"type": "integer"},
                "runCoordinator": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                        "config": {
                            "type": "object",
                            "properties": {
                                "queuedRunCoordinator": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "maxConcurrentRuns": _INT_OR_ENV,
                                        "tagConcurrencyLimits": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "additionalProperties": False,
                                                "required": ["key", "limit"],
                                                "properties": {
                                                    "key": {"type": "string"},
                                                    "value": {
                                                        "anyOf": [
                                                            {"type": "string"},
                                                            {
                                                                "type": "object",
                                                                "additionalProperties": False,
                                                                "required": ["applyLimitPerUniqueValue"],
                                                                "properties": {
                                                                    "applyLimitPerUniqueValue": {
                                                                        "type": "boolean"
                                                                    }
                                                                },
                                                            },
                                                        ]
                                                    },
                                                    "limit": {"type": "integer", "minimum": 0},
                                                },
                                            },
                                        },
                                        "dequeueIntervalSeconds": _INT_OR_ENV,
                                        "dequeueNumWorkers": _INT_OR_ENV,
                                        "dequeueUseThreads": {"type": ["boolean", "null"]},
                                        "blockOpConcurrencyLimitedRuns": {"type": ["object", "null"]},
                                    },
                                },
                                "customRunCoordinator": {"type": ["object", "null"]},
                            },
                        },
                    },
                },
                "runMonitoring": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "startTimeoutSeconds": {"type": "integer"},
                        "cancelTimeoutSeconds": {"type": "integer"},
                        "maxResumeRunAttempts": {"type": "integer"},
                        "pollIntervalSeconds": {"type": "integer"},
                        "freeSlotsAfterRunEndSeconds": {"type": "integer"},
                    },
                },
                "runRetries": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"enabled": {"type": "boolean"}, "maxRetries": {"type": "integer"}},
                },
                "sensors": {"type": "object"},
                "schedules": {"type": "object"},
            },
        },
        "retention": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "sensor": _TICK_RETENTION,
                "schedule": _TICK_RETENTION,
                "autoMaterialize": _TICK_RETENTION,
            },
        },
    },
}


@cache
def helm_values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


def test_the_helm_values_use_only_the_charts_documented_keys() -> None:
    assert validation_errors(helm_values(), DAGSTER_CHART_VALUES_SCHEMA) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("runLauncher", "config", "k8sRunLauncher", "runK8sConfg"), {}, "runK8sConfg"),
        (("dagsterDaemon", "runMonitoring", "startTimeout"), 300, "startTimeout"),
        (("retention", "sensor", "purgeAfterDays"), {"skipped": 7}, "purgeAfterDays"),
        (("computeLogManager", "config", "s3ComputeLogManager", "bucket"), 7, "bucket"),
        (("dagsterWebserver", "resources"), {"limit": {"cpu": "1"}}, "limit"),
        (
            ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "tagConcurrencyLimits"),
            [{"key": "x"}],
            "limit",
        ),
    ],
)
def test_helm_values_validation_catches_mistakes(path: tuple[str, ...], value: Any, expected: str) -> None:
    broken = copy.deepcopy(helm_values())
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = validation_errors(broken, DAGSTER_CHART_VALUES_SCHEMA)
    assert any(expected in error for error in errors), errors


def test_the_helm_values_match_the_production_instance_and_the_platform() -> None:
    values = helm_values()
    production = yaml.safe_load(PRODUCTION_YAML.read_text())
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    production_queue = production["run_coordinator"]["config"]
    assert queue["maxConcurrentRuns"] == production_queue["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == production_queue["tag_concurrency_limits"]
    assert {"key": "platform/compute", "value": "embedding", "limit": 2} in queue["tagConcurrencyLimits"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] and production["run_monitoring"]["enabled"]
    assert monitoring["startTimeoutSeconds"] == production["run_monitoring"]["start_timeout_seconds"]
    assert (
        values["postgresql"]["postgresqlScheme"] == production["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    assert values["telemetry"]["enabled"] is False and production["telemetry"]["enabled"] is False
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    # Step logs go to the bucket the lake lives in, on the same endpoint.
    [env_map] = yaml_documents(KUSTOMIZE / "platform-env.yaml")
    s3_logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert env_map["data"]["PLATFORM_LAKE_URI"].startswith(f"s3://{s3_logs['bucket']}/")
    assert s3_logs["endpointUrl"] == env_map["data"]["AWS_ENDPOINT_URL"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "platform_assets.definitions"]
    image_names = {image["name"] for image in kustomization()["images"]}
    assert deployment["image"]["repository"] in image_names
    assert deployment["image"]["tag"] == next(i["newTag"] for i in kustomization()["images"])
    # Every Dagster pod carries the label the NetworkPolicies admit.
    for labels in (
        values["dagsterWebserver"]["labels"],
        values["dagsterDaemon"]["labels"],
        deployment["labels"],
        values["runLauncher"]["config"]["k8sRunLauncher"]["labels"],
    ):
        assert labels[MEMBER_KEY] == MEMBER_VALUE


# ---------------------------------------------------------------------------------------------------------------
# The pods the K8s run launcher and the k8s_job_executor would create
# ---------------------------------------------------------------------------------------------------------------

_RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def render_job(op_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Kubernetes Job dagster-k8s builds for a run (op_tags None) or for a step with these op tags.

    The run-level shape is the Helm values' runK8sConfig (what the chart writes into the instance); a step's op
    tag `dagster-k8s/config` is merged over it the way the k8s_job_executor merges them.
    """
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )
    from kubernetes.client import ApiClient

    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    [deployment] = helm_values()["dagster-user-deployments"]["deployments"]
    run_level = {_RUN_K8S_CONFIG_KEYS[k]: v for k, v in launcher["runK8sConfig"].items()}
    context = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_level))
    if op_tags is not None:
        tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in op_tags.items()}
        context = context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    job_config = DagsterK8sJobConfig(
        job_image=f"{deployment['image']['repository']}:{deployment['image']['tag']}",
        dagster_home="/opt/dagster/dagster_home",
        image_pull_policy=launcher["imagePullPolicy"],
        instance_config_map="dagster-instance",
        postgres_password_secret=helm_values()["global"]["postgresqlSecretName"],
        env_config_maps=[ref["name"] for ref in deployment["envConfigMaps"]],
        env_secrets=[ref["name"] for ref in deployment["envSecrets"]],
        labels=launcher["labels"],
    )
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_run" if op_tags is None else "execute_step"],
        "dagster-run-0123456789" if op_tags is None else "dagster-step-0123456789",
        user_defined_k8s_config=context.run_k8s_config,
        labels=launcher["labels"],
    )
    return ApiClient().sanitize_for_serialization(job)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("shape", ["run", "embedding step", "embedding step on a GPU"])
def test_run_and_step_pods_are_valid_jobs(shape: str, version: str) -> None:
    op_tags = {
        "run": None,
        "embedding step": embedding_op_tags(),
        "embedding step on a GPU": embedding_op_tags(gpu=True),
    }
    job = render_job(op_tags[shape])
    assert kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert pod["metadata"]["labels"][MEMBER_KEY] == MEMBER_VALUE
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    expected = {
        "run": helm_values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"][
            "resources"
        ],
        "embedding step": EMBEDDING_STEP_K8S_CONFIG["container_config"]["resources"],
        "embedding step on a GPU": EMBEDDING_STEP_GPU_K8S_CONFIG["container_config"]["resources"],
    }[shape]
    assert container["resources"] == expected
    if shape == "embedding step on a GPU":
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_the_embedding_op_tags_carry_the_queue_tag_and_stay_independent() -> None:
    tags = embedding_op_tags()
    assert tags["platform/compute"] == "embedding"
    tags["dagster-k8s/config"]["container_config"]["resources"]["requests"]["cpu"] = "64"
    assert EMBEDDING_STEP_K8S_CONFIG["container_config"]["resources"]["requests"]["cpu"] == "4"


# ---------------------------------------------------------------------------------------------------------------
# Secrets are references, never values; the network policies admit the platform's pods
# ---------------------------------------------------------------------------------------------------------------


def deploy_text_files() -> list[Path]:
    return sorted(
        p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".md", ".py", ""}
    )


def referenced_secrets() -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("secretKeyRef", "secretRef"):
                if isinstance(node.get(key), dict):
                    names.add(node[key]["name"])
            if isinstance(node.get("envSecrets"), list):
                names.update(ref["name"] for ref in node["envSecrets"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in manifest_files():
        for doc in yaml_documents(path):
            walk(doc)
    walk(helm_values())
    names.add(helm_values()["global"]["postgresqlSecretName"])
    return names


_CREDENTIAL_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(
        r"(?i)\b(password|secret|api[_-]?key|token)\s*[:=]\s*['\"]?(?!\$|\{|…|\.\.\.|<)[A-Za-z0-9+/_\-]{12,}"
    ),
]


def test_secrets_are_referenced_never_defined() -> None:
    for path in manifest_files():
        for doc in yaml_documents(path):
            assert doc["kind"] != "Secret", f"{path} defines a Secret: reference one instead"
    for path in deploy_text_files():
        text = path.read_text()
        for pattern in _CREDENTIAL_PATTERNS:
            assert not pattern.search(text), (
                f"{path} looks like it holds a credential: {pattern.search(text)}"
            )
    assert "postgresqlPassword" not in helm_values().get("postgresql", {})
    assert helm_values()["generatePostgresqlPasswordSecret"] is False


def test_every_referenced_secret_is_documented() -> None:
    readme = (DEPLOY / "README.md").read_text()
    secrets = referenced_secrets()
    assert secrets == {
        "platform-s3-credentials",
        "platform-minio-root",
        "platform-redis-auth",
        "platform-feast",
        "platform-metadata-center",
        "platform-dagster-postgresql",
    }
    for name in secrets:
        assert f"`{name}`" in readme, (
            f"{name} is referenced but deploy/README.md does not say how to create it"
        )


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_network_policies_admit_only_platform_pods_to_each_service() -> None:
    documents = render_kustomization()
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    services = [d for d in documents if d["kind"] == "Service"]
    workloads = [d for d in documents if pod_templates(d)]
    member = {MEMBER_KEY: MEMBER_VALUE}
    # Every Service's pods, and the Ray pods (KubeRay makes their Services), are behind a policy.
    guarded = [(s["metadata"]["name"], s["spec"]["selector"]) for s in services] + [
        ("platform-ray", {"ray.io/cluster": raycluster()["metadata"]["name"]})
    ]
    for name, pod_labels in guarded:
        matching = [p for p in policies if selects(p["spec"]["podSelector"], pod_labels)]
        assert matching, f"no NetworkPolicy guards {name}"
        for policy in matching:
            assert policy["spec"]["policyTypes"] == ["Ingress"]
            peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
            pod_peers = [peer for peer in peers if "podSelector" in peer and "namespaceSelector" not in peer]
            assert any(selects(peer["podSelector"], member) for peer in pod_peers), policy["metadata"]["name"]
            # Pod peers admit only the platform's pods, never "every pod in the namespace" ({}).
            assert all(peer["podSelector"].get("matchLabels") for peer in pod_peers), policy["metadata"][
                "name"
            ]
            # Namespace peers are named, never "every namespace".
            for peer in (p for p in peers if "namespaceSelector" in p):
                assert peer["namespaceSelector"].get("matchLabels"), policy["metadata"]["name"]
    # And every platform pod can pass them: it carries the member label.
    for workload in workloads:
        for template in pod_templates(workload):
            assert template["metadata"]["labels"].get(MEMBER_KEY) == MEMBER_VALUE, workload["metadata"][
                "name"
            ]


# ---------------------------------------------------------------------------------------------------------------
# The image
# ---------------------------------------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into stages."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, enough for this file: last matching pattern wins, `!` re-includes,
    `**/` matches at any depth, a pattern that names a directory covers what is under it."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern.removeprefix("**/"))
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
        matched = any(
            fnmatch.fnmatchcase(prefix, candidate)
            for candidate in candidates
            for prefix in (prefixes if not candidate.startswith("**") else suffixes + prefixes)
        ) or any(pattern.startswith("**/") and fnmatch.fnmatchcase(s, pattern[3:]) for s in suffixes)
        if matched:
            excluded = not negate
    return excluded


def test_the_dockerfile_builds_a_non_root_offline_image_without_secrets() -> None:
    stages = dockerfile_stages()
    assert len(stages) == 2, "a build stage and a slim runtime stage"
    everything = [line for stage in stages for line in stage]
    # The base image (a global ARG, before the first stage) is the Python the wheels are built for.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-", dockerfile, re.MULTILINE)
    assert all(
        stage[0] == "FROM ${PYTHON_IMAGE}" or stage[0].startswith("FROM ${PYTHON_IMAGE} AS ")
        for stage in stages
    )
    # CPU torch from PyTorch's index by default (PyPI's Linux wheel is the CUDA build), pinned like pyproject.
    assert "ARG TORCH_VARIANT=cpu" in everything
    assert any(
        "download.pytorch.org/whl/${TORCH_VARIANT}" in line and '"torch==2.13.0"' in line
        for line in everything
    )
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in pyproject
    install = next(line for line in stages[0] if line.startswith("RUN pip install ."))
    for needed in ("dagster-postgres", "ray[default]"):
        assert needed in install or needed in pyproject, f"{needed} is needed in every pod"
    runtime = stages[-1]
    users = [line for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in {"0", "root"}
    last_user = max(i for i, line in enumerate(runtime) if line.startswith("USER "))
    smoke = next(i for i, line in enumerate(runtime) if "smoke_check.py" in line and line.startswith("RUN "))
    assert smoke > last_user, "the build-time check runs as the image's user"
    env = " ".join(line for line in runtime if line.startswith("ENV "))
    assert "HF_HUB_OFFLINE=1" in env
    for line in everything:
        if line.startswith(("ENV ", "ARG ")):
            assert not re.search(r"(?i)(key|secret|password|token)\w*=", line), f"secret-like setting: {line}"
    assert any(line.startswith("CMD ") and "platform_assets.definitions" in line for line in runtime)
    # Every COPY source exists in the repository and survives the ignore file.
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for line in everything:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (PROJECT_ROOT / source).exists(), source
                assert not dockerignore_excludes(source.rstrip("/"), patterns), f"{source} is excluded"


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("pyproject.toml", False),
        ("README.md", False),
        ("platform_assets/definitions.py", False),
        ("platform_assets/lib/embedding/__init__.py", False),
        ("deploy/docker/smoke_check.py", False),
        ("deploy/helm/values.yaml", True),
        (".venv/bin/python", True),
        (".platform/lake/raw/reviews.parquet", True),
        (".git/config", True),
        ("platform_assets_tests/test_deploy.py", True),
        ("platform_assets/__pycache__/cli.cpython-311.pyc", True),
        ("platform_assets/.env", True),
        ("platform_assets/secrets.env", True),
    ],
)
def test_the_build_context_holds_only_what_the_image_needs(path: str, excluded: bool) -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert dockerignore_excludes(path, patterns) is excluded


@pytest.mark.slow
def test_the_images_build_time_check_passes_here(tmp_path: Path) -> None:
    """deploy/docker/smoke_check.py, which the image build runs, passes in this environment (same packages)."""
    env = {
        "PATH": str(BIN),
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "PLATFORM_DATA_DIR": str(tmp_path / "platform"),
    }
    completed = subprocess.run(
        [sys.executable, str(DEPLOY / "docker" / "smoke_check.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("ok: ") and "384-d unit vectors" in completed.stdout
