"""Offline validation of batchscore's Kubernetes manifests (no cluster, no network).

    python infra/validate_manifests.py [--repo ROOT] [--kubectl kubectl]

Renders infra/k8s/overlays/{cpu,gpu} with `kubectl kustomize`, then checks:
- every rendered object against its schema (k8s_schema: strict core schemas, vendored CRDs);
- the Spark pod templates shipped in the ConfigMap batchscore-spark-conf as Pods;
- that names resolve: ConfigMaps, PVCs and service accounts exist in the render (or are the
  Airflow chart's), Secrets and their keys are the documented out-of-band ones;
- that settings agree: spark-defaults with BATCHSCORE_SPARK_*, images, GPU amounts, Spark
  version and job files with the repository;
- the Airflow chart's values and task pod template (validate_airflow).
Exit status 1 with one line per problem; 0 with a summary.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from k8s_model import (
    ENV_CONFIGMAP,
    Render,
    containers,
    in_repo,
    label,
    pod_problems,
    reference_problems,
    render,
)
from k8s_schema import load_crds, validate_object
from validate_airflow import airflow_image, airflow_problems

REPO = Path(__file__).resolve().parent.parent
SPARK_CONF_MOUNT = "/opt/spark-conf"
SPARK_CONF = "batchscore-spark-conf"
OVERLAYS = ("cpu", "gpu")
GPU = "nvidia.com/gpu"


def spark_pod_templates(r: Render) -> dict[str, Any]:
    """The pod templates in the Spark ConfigMap, parsed, by key."""
    conf = r.find("ConfigMap", SPARK_CONF) or {}
    out = {}
    for key, text in (conf.get("data") or {}).items():
        if key.endswith(".yaml"):
            try:
                out[key] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                out[key] = f"not YAML: {exc}"
    return out


def mapping(value: Any) -> dict[str, Any]:
    """The value when it is a mapping, else {} (its own problem is reported elsewhere)."""
    return value if isinstance(value, dict) else {}


def parse_spark_conf(text: str) -> dict[str, str]:
    """spark-defaults.conf: `key  value` lines; # comments."""
    conf = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf[key] = value.strip()
    return conf


def spark_conf(r: Render) -> dict[str, str]:
    """The overlay's spark-defaults.conf, parsed ({} when the ConfigMap lacks it)."""
    data = (r.find("ConfigMap", SPARK_CONF) or {}).get("data") or {}
    return parse_spark_conf(data.get("spark-defaults.conf", ""))


def gpu_limit(pod: dict[str, Any]) -> str | None:
    """The nvidia.com/gpu limit of a pod's first container that sets one."""
    for container in containers(pod.get("spec") or {}):
        limit = ((container.get("resources") or {}).get("limits") or {}).get(GPU)
        if limit is not None:
            return str(limit)
    return None


def spark_conf_problems(r: Render, repo: Path) -> list[str]:
    """spark-defaults.conf against the environment, the templates and the repository."""
    src = f"{r.overlay}: ConfigMap/{SPARK_CONF} spark-defaults.conf"
    conf, templates = spark_conf(r), spark_pod_templates(r)
    if not conf:
        return [f"{src}: missing"]
    env = (r.find("ConfigMap", ENV_CONFIGMAP) or {}).get("data") or {}
    found = []
    for key, variable in (
        ("spark.master", "BATCHSCORE_SPARK_MASTER"),
        ("spark.executor.cores", "BATCHSCORE_SPARK_EXECUTOR_CORES"),
        ("spark.executor.memory", "BATCHSCORE_SPARK_EXECUTOR_MEMORY"),
    ):
        if conf.get(key) != env.get(variable):
            found.append(
                f"{src}: {key}={conf.get(key)} but {variable}={env.get(variable)} (get_spark uses the latter)"
            )
    namespace = (r.find("ConfigMap", SPARK_CONF) or {}).get("metadata", {}).get("namespace")
    if conf.get("spark.kubernetes.namespace") != namespace:
        found.append(f"{src}: spark.kubernetes.namespace is not the overlay's namespace {namespace}")
    account = conf.get("spark.kubernetes.authenticate.driver.serviceAccountName", "")
    if not r.has("ServiceAccount", account):
        found.append(f"{src}: service account {account!r} is not in overlay {r.overlay}")
    for role in ("driver", "executor"):
        path = conf.get(f"spark.kubernetes.{role}.podTemplateFile", "")
        key = path.removeprefix(SPARK_CONF_MOUNT + "/")
        if key not in templates:
            found.append(
                f"{src}: {role} pod template {path!r} is not a key of the ConfigMap at {SPARK_CONF_MOUNT}"
            )
            continue
        names = [c.get("name") for c in containers(mapping(templates[key]).get("spec") or {})]
        if conf.get(f"spark.kubernetes.{role}.podTemplateContainerName") not in names:
            found.append(f"{src}: {role} template has no container named as podTemplateContainerName")
    return found + gpu_conf_problems(conf, templates, repo, src)


def gpu_conf_problems(conf: dict[str, str], templates: dict[str, Any], repo: Path, src: str) -> list[str]:
    """GPU executors: the amount Spark schedules is the one the executor pod requests."""
    amount = conf.get("spark.executor.resource.gpu.amount")
    path = conf.get("spark.kubernetes.executor.podTemplateFile", "").removeprefix(SPARK_CONF_MOUNT + "/")
    limit = gpu_limit(mapping(templates.get(path)))
    if amount is None:
        return [f"{src}: the executor template requests {GPU} but Spark schedules none"] if limit else []
    found = []
    if limit != amount:
        found.append(
            f"{src}: spark.executor.resource.gpu.amount={amount} but the executor template's {GPU} limit is {limit}"
        )
    if conf.get("spark.executor.resource.gpu.vendor") != GPU.split("/")[0]:
        found.append(f"{src}: spark.executor.resource.gpu.vendor must be {GPU.split('/')[0]} on Kubernetes")
    script = in_repo(repo, conf.get("spark.executor.resource.gpu.discoveryScript", ""))
    if script is None or not script.is_file():
        found.append(f"{src}: the GPU discovery script is not a file the image has from the repository")
    return found


def pyspark_version(repo: Path) -> str | None:
    """The pyspark pin of requirements.txt: the Spark the image runs."""
    match = re.search(r"^pyspark==(\S+)$", (repo / "requirements.txt").read_text(), re.MULTILINE)
    return match.group(1) if match else None


def spark_app_problems(app: dict[str, Any], repo: Path, src: str) -> list[str]:
    """A SparkApplication against the repository: Spark version, job file, pipeline, GPUs."""
    spec, found = app.get("spec") or {}, []
    if spec.get("sparkVersion") != pyspark_version(repo):
        found.append(
            f"{src}: sparkVersion {spec.get('sparkVersion')} is not the pinned pyspark {pyspark_version(repo)}"
        )
    job = in_repo(repo, str(spec.get("mainApplicationFile", "")))
    if job is None or not job.is_file():
        found.append(
            f"{src}: mainApplicationFile {spec.get('mainApplicationFile')} is not a job file in the image"
        )
    if spec.get("suspend") is not True:
        found.append(f"{src}: must be created suspended (spec.suspend: true); runs are started by a patch")
    args = [str(a) for a in spec.get("arguments") or []]
    if "--pipeline" in args and args.index("--pipeline") + 1 < len(args):
        pipeline = args[args.index("--pipeline") + 1]
        if not (repo / "pipelines" / f"{pipeline}.yaml").is_file():
            found.append(f"{src}: pipeline {pipeline!r} has no pipelines/{pipeline}.yaml")
    else:
        found.append(f"{src}: arguments need --pipeline NAME")
    amount = (spec.get("sparkConf") or {}).get("spark.executor.resource.gpu.amount")
    gpu = (spec.get("executor") or {}).get("gpu")
    if (amount is None) != (gpu is None):
        found.append(f"{src}: executor.gpu and sparkConf spark.executor.resource.gpu.amount go together")
    elif gpu and (gpu.get("name") != GPU or str(gpu.get("quantity")) != str(amount)):
        found.append(f"{src}: executor.gpu {gpu} does not match spark.executor.resource.gpu.amount={amount}")
    return found


def images_in(value: Any) -> Iterator[str]:
    """Every `image:` string in an object (SparkApplications and pods alike)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "image" and isinstance(item, str):
                yield item
            else:
                yield from images_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from images_in(item)


def image_problems(r: Render, airflow_image: str) -> list[str]:
    """One overlay uses the Airflow (CPU) image and its spark-defaults image, nothing else."""
    spark_image = spark_conf(r).get("spark.kubernetes.container.image", "")
    allowed = {airflow_image, spark_image}
    found = []
    if r.overlay == "cpu" and spark_image != airflow_image:
        found.append(f"cpu: spark-defaults image {spark_image} is not the Airflow image {airflow_image}")
    sources = [(label(o), o) for o in r.objects] + [
        (f"{SPARK_CONF}:{k}", p) for k, p in spark_pod_templates(r).items()
    ]
    for source, value in sources:
        for image in images_in(value):
            if image not in allowed:
                found.append(
                    f"{r.overlay}: {source}: image {image} is neither {airflow_image} nor {spark_image}"
                )
    executor = mapping(spark_pod_templates(r).get("executor-pod-template.yaml"))
    if any(c.get("image") != spark_image for c in containers(executor.get("spec") or {})):
        found.append(f"{r.overlay}: the executor template's image is not spark.kubernetes.container.image")
    return found


def overlay_problems(r: Render, repo: Path, crds: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Schemas, pod templates, references and Spark settings of one rendered overlay."""
    found = []
    for obj in r.objects:
        src = f"{r.overlay}: {label(obj)}"
        found += [f"{src}: {p}" for p in validate_object(obj, crds)]
        if obj.get("kind") != "ConfigMap":
            found += reference_problems(obj, r, src)
        if obj.get("kind") == "SparkApplication":
            found += spark_app_problems(obj, repo, src)
    for key, pod in spark_pod_templates(r).items():
        src = f"{r.overlay}: ConfigMap/{SPARK_CONF} {key}"
        found += pod_problems(pod, src) + reference_problems(pod, r, src)
    return found + spark_conf_problems(r, repo)


def gpu_conf_keeps_cpu_keys(renders: dict[str, Render]) -> list[str]:
    """The GPU spark-defaults repeats every CPU setting (SPARK_CONF_DIR reads one file)."""
    if not {"cpu", "gpu"} <= renders.keys():
        return []
    missing = sorted(spark_conf(renders["cpu"]).keys() - spark_conf(renders["gpu"]).keys())
    return [f"gpu: spark-defaults.conf lacks {key}, which the CPU file sets" for key in missing]


def main(argv: list[str] | None = None) -> int:
    """Render the overlays, run every check, print the problems; 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="repository root (default: this one)")
    parser.add_argument("--kubectl", default="kubectl")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    crds = load_crds(repo / "infra" / "k8s" / "crds")
    problems: list[str] = [] if crds else ["infra/k8s/crds: no CustomResourceDefinition found"]
    renders: dict[str, Render] = {}
    for overlay in OVERLAYS:
        rendered, notes = render(repo, overlay, args.kubectl)
        problems += notes
        if rendered is not None:
            renders[overlay] = rendered
            problems += overlay_problems(rendered, repo, crds)
    problems += gpu_conf_keeps_cpu_keys(renders)
    problems += airflow_problems(repo, list(renders.values()))
    image = airflow_image(repo)
    for rendered in renders.values():
        problems += image_problems(rendered, image)
    for line in problems:
        print(f"FAIL {line}", file=sys.stderr)
    if problems:
        return 1
    count = sum(len(r.objects) for r in renders.values())
    print(
        f"ok: {count} objects in overlays {', '.join(renders)}, Spark pod templates, Airflow values and pod template"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
