"""Checks of the Airflow chart's values (infra/k8s/airflow/values.yaml) and the
KubernetesExecutor pod template (infra/k8s/airflow/pod_template.yaml), against the rendered
overlays they run next to. Not the chart's full values schema: its top-level keys, and what
batchscore relies on (executor, secrets, images, DAG folder, namespace, environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from k8s_model import (
    ENV_CONFIGMAP,
    EXTERNAL_SECRETS,
    IMAGE_ROOT,
    Render,
    in_repo,
    pod_problems,
    reference_problems,
)

VALUES = Path("infra/k8s/airflow/values.yaml")
POD_TEMPLATE = Path("infra/k8s/airflow/pod_template.yaml")
# Top-level keys of apache-airflow/airflow (chart 1.18+) that batchscore may set.
CHART_TOP_LEVEL_KEYS = frozenset(
    [
        "fullnameOverride",
        "nameOverride",
        "useStandardNaming",
        "revisionHistoryLimit",
        "uid",
        "gid",
        "securityContext",
        "securityContexts",
        "containerLifecycleHooks",
        "airflowHome",
        "defaultAirflowRepository",
        "defaultAirflowTag",
        "defaultAirflowDigest",
        "airflowVersion",
        "images",
        "nodeSelector",
        "affinity",
        "tolerations",
        "topologySpreadConstraints",
        "schedulerName",
        "labels",
        "ingress",
        "networkPolicies",
        "airflowPodAnnotations",
        "airflowConfigAnnotations",
        "airflowLocalSettings",
        "rbac",
        "executor",
        "allowPodLaunching",
        "env",
        "volumes",
        "volumeMounts",
        "secret",
        "enableBuiltInSecretEnvVars",
        "priorityClasses",
        "extraSecrets",
        "extraConfigMaps",
        "extraEnv",
        "extraEnvFrom",
        "data",
        "fernetKey",
        "fernetKeySecretName",
        "webserverSecretKey",
        "webserverSecretKeySecretName",
        "apiSecretKey",
        "apiSecretKeySecretName",
        "jwtSecret",
        "jwtSecretName",
        "kerberos",
        "workers",
        "scheduler",
        "createUserJob",
        "migrateDatabaseJob",
        "apiServer",
        "webserver",
        "triggerer",
        "dagProcessor",
        "flower",
        "statsd",
        "pgbouncer",
        "redis",
        "registry",
        "elasticsearch",
        "opensearch",
        "ports",
        "quotas",
        "limits",
        "cleanup",
        "postgresql",
        "config",
        "podTemplate",
        "dags",
        "logs",
    ]
)
ASYNC_DB_URL = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"
# Chart value -> the key its Secret must hold.
SECRET_VALUES = {
    ("data", "metadataSecretName"): "connection",
    ("fernetKeySecretName",): "fernet-key",
    ("apiSecretKeySecretName",): "api-secret-key",
    ("jwtSecretName",): "jwt-secret",
}


def load(repo: Path, relative: Path) -> tuple[Any, list[str]]:
    """A YAML file, or the reason it cannot be read."""
    try:
        return yaml.safe_load((repo / relative).read_text()), []
    except (OSError, yaml.YAMLError) as exc:
        return None, [f"{relative}: {exc}"]


def dig(values: Any, *keys: str) -> Any:
    """values[k1][k2]..., None where a level is missing."""
    for key in keys:
        values = values.get(key) if isinstance(values, dict) else None
    return values


def airflow_image(repo: Path) -> str:
    """`repository:tag` of the chart's Airflow image ('' when the values do not say)."""
    values, _ = load(repo, VALUES)
    image = dig(values, "images", "airflow") or {}
    return f"{image.get('repository')}:{image.get('tag')}" if image else ""


def values_problems(values: Any, repo: Path) -> list[str]:
    """The values file on its own: keys, executor, secrets, images, DAG folder."""
    src = str(VALUES)
    if not isinstance(values, dict):
        return [f"{src}: not a mapping of chart values"]
    found = [
        f"{src}: {key}: not a top-level key of the Airflow chart"
        for key in sorted(values.keys() - CHART_TOP_LEVEL_KEYS)
    ]
    if values.get("executor") != "KubernetesExecutor":
        found.append(f"{src}: executor is {values.get('executor')!r}, not KubernetesExecutor")
    for path, key in SECRET_VALUES.items():
        name = dig(values, *path)
        if name not in EXTERNAL_SECRETS or key not in EXTERNAL_SECRETS[name]:
            found.append(f"{src}: {'.'.join(path)}={name!r} must name a documented Secret holding {key!r}")
    found += chart_secret_problems(values.get("secret") or [])
    if dig(values, "postgresql", "enabled") is not False:
        found.append(f"{src}: postgresql.enabled must be false (the metadata DB is external)")
    template = dig(values, "images", "pod_template") or {}
    if f"{template.get('repository')}:{template.get('tag')}" != airflow_image(repo):
        found.append(f"{src}: images.pod_template is not images.airflow")
    dags = in_repo(repo, str(dig(values, "config", "core", "dags_folder")))
    if dags is None or not any(dags.glob("*.py")):
        found.append(f"{src}: config.core.dags_folder must be a folder of DAG files under {IMAGE_ROOT}")
    if values.get("podTemplate") is not None:
        found.append(f"{src}: podTemplate comes from {POD_TEMPLATE} (--set-file); leave it null here")
    return found


def chart_secret_problems(entries: list[Any]) -> list[str]:
    """`secret:` (env vars from Secrets): documented names and keys, and the async DB URL."""
    src, found, names = f"{VALUES}: secret", [], set()
    for entry in entries:
        name, key = dig(entry, "secretName"), dig(entry, "secretKey")
        if name not in EXTERNAL_SECRETS or key not in EXTERNAL_SECRETS[name]:
            found.append(f"{src}: {name!r} key {key!r} is not a documented secret key")
        names.add(dig(entry, "envName"))
    if ASYNC_DB_URL not in names:
        found.append(f"{src}: must set {ASYNC_DB_URL} (psycopg 3; the image has no asyncpg)")
    return found


def environment_problems(values: dict[str, Any], renders: list[Render]) -> list[str]:
    """extraEnvFrom (a YAML string in the chart) is a list of EnvFromSource naming batchscore-env."""
    src = f"{VALUES}: extraEnvFrom"
    try:
        sources = yaml.safe_load(values.get("extraEnvFrom") or "[]")
    except yaml.YAMLError as exc:
        return [f"{src}: {exc}"]
    names = [dig(s, "configMapRef", "name") for s in sources or []] if isinstance(sources, list) else []
    if ENV_CONFIGMAP not in names:
        return [f"{src}: must list configMapRef {ENV_CONFIGMAP} (batchscore's environment)"]
    found = []
    for r in renders:
        found += reference_problems(sources, r, src)
        namespace = dig(r.find("ConfigMap", ENV_CONFIGMAP), "metadata", "namespace")
        if dig(values, "config", "kubernetes_executor", "namespace") != namespace:
            found.append(
                f"{VALUES}: config.kubernetes_executor.namespace is not {r.overlay}'s namespace {namespace}"
            )
    return found


def pod_template_problems(pod: Any, values: dict[str, Any], repo: Path, renders: list[Render]) -> list[str]:
    """The task pod template: a valid Pod, container `base`, the chart's image and account."""
    src = str(POD_TEMPLATE)
    found = pod_problems(pod, src)
    if found:
        return found
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    if "base" not in names:
        found.append(f"{src}: KubernetesExecutor needs a container named 'base' (found {names})")
    images = {c.get("image") for c in spec.get("containers") or []}
    if images != {airflow_image(repo)}:
        found.append(f"{src}: container images {sorted(images)} are not the chart's {airflow_image(repo)}")
    account = dig(values, "workers", "serviceAccount", "name")
    if spec.get("serviceAccountName") != account:
        found.append(f"{src}: serviceAccountName is not workers.serviceAccount.name ({account})")
    for r in renders:
        found += reference_problems(pod, r, f"{src} ({r.overlay})")
    return found


def airflow_problems(repo: Path, renders: list[Render]) -> list[str]:
    """Every problem of the values file and the pod template."""
    values, found = load(repo, VALUES)
    pod, more = load(repo, POD_TEMPLATE)
    found += more
    if found:
        return found
    found = values_problems(values, repo)
    if isinstance(values, dict):
        found += environment_problems(values, renders)
        found += pod_template_problems(pod, values, repo, renders)
    return found
