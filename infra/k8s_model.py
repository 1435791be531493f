"""Rendered overlays and what their objects refer to, shared by the manifest checks."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from k8s_schema import validate_core

IMAGE_ROOT = "/opt/batchscore"  # where the image has the repository (infra/docker/Dockerfile)
ENV_CONFIGMAP = "batchscore-env"
# Created by hand or a secrets manager (docs/kubernetes.md), never rendered from git.
EXTERNAL_SECRETS = {
    "batchscore-warehouse": {"url"},
    "batchscore-alerts": {"webhook"},
    "airflow-metadata": {"connection", "async-connection"},
    "airflow-fernet-key": {"fernet-key"},
    "airflow-api-secret-key": {"api-secret-key"},
    "airflow-jwt-secret": {"jwt-secret"},
}
# Objects the Airflow chart creates for release `airflow`.
CHART_OBJECTS = {("ConfigMap", "airflow-config"), ("PersistentVolumeClaim", "airflow-logs")}
KUSTOMIZE_DEPRECATION = re.compile(r"^# Warning: '\w+' is deprecated")


@dataclass
class Render:
    """One overlay's rendered objects."""

    overlay: str
    objects: list[dict[str, Any]]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
                return obj
        return None

    def has(self, kind: str, name: str) -> bool:
        """Whether the object exists once this overlay and the Airflow chart are applied."""
        return self.find(kind, name) is not None or (kind, name) in CHART_OBJECTS


def label(obj: dict[str, Any]) -> str:
    """`Kind/name`, as problems name an object."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def render(repo: Path, overlay: str, kubectl: str) -> tuple[Render | None, list[str]]:
    """`kubectl kustomize` of one overlay; kustomize's deprecation notes are dropped."""
    folder = repo / "infra" / "k8s" / "overlays" / overlay
    try:
        result = subprocess.run(
            [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None, [f"{overlay}: {kubectl} not found (infra/check.sh installs it)"]
    notes = [line for line in result.stderr.splitlines() if line and not KUSTOMIZE_DEPRECATION.match(line)]
    if result.returncode != 0:
        return None, [f"{overlay}: kubectl kustomize failed: {' '.join(notes) or result.returncode}"]
    try:
        objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj is not None]
    except yaml.YAMLError as exc:
        return None, [f"{overlay}: the render is not YAML: {exc}"]
    return Render(overlay, objects), [f"{overlay}: kustomize: {line}" for line in notes]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers and containers of a pod spec."""
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def pod_problems(pod: Any, source: str) -> list[str]:
    """A pod template: a valid Pod whose containers all name an image."""
    if isinstance(pod, str):
        return [f"{source}: {pod}"]
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        return [f"{source}: not a Pod (kind: Pod, apiVersion: v1)"]
    found = [f"{source}: {p}" for p in validate_core(pod)]
    for n, container in enumerate(containers(pod.get("spec") or {})):
        if not container.get("image"):
            found.append(f"{source}: spec.containers[{n}] ({container.get('name')}): no image")
    return found


def references(value: Any) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key) of every ConfigMap, Secret, PVC and service account a value names."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
        return
    if not isinstance(value, dict):
        return
    for field, kind in (
        ("configMapRef", "ConfigMap"),
        ("configMapKeyRef", "ConfigMap"),
        ("configMap", "ConfigMap"),
    ):
        if isinstance(value.get(field), dict):
            yield kind, value[field].get("name", ""), value[field].get("key")
    for field in ("secretKeyRef", "secretRef"):
        ref = value.get(field)
        if isinstance(ref, dict) and not ref.get("optional"):
            yield "Secret", ref.get("name", ""), ref.get("key")
    if isinstance(value.get("secret"), dict) and "secretName" in value["secret"]:
        yield "Secret", value["secret"]["secretName"], None
    if isinstance(value.get("persistentVolumeClaim"), dict):
        yield "PersistentVolumeClaim", value["persistentVolumeClaim"].get("claimName", ""), None
    for field in ("serviceAccountName", "serviceAccount"):
        if isinstance(value.get(field), str):
            yield "ServiceAccount", value[field], None
    for item in value.values():
        yield from references(item)


def reference_problems(value: Any, r: Render, source: str) -> list[str]:
    """Names that resolve to nothing in the overlay, the chart or the documented Secrets."""
    found = []
    for kind, name, key in references(value):
        if kind == "Secret":
            if name not in EXTERNAL_SECRETS:
                found.append(f"{source}: Secret {name!r} is not one of the documented secrets")
            elif key is not None and key not in EXTERNAL_SECRETS[name]:
                found.append(f"{source}: Secret {name!r} has no key {key!r}")
        elif not r.has(kind, name):
            found.append(f"{source}: {kind} {name!r} is not in overlay {r.overlay}")
    return found


def in_repo(repo: Path, image_path: str) -> Path | None:
    """The repository file behind a path in the image, or None when it is outside /opt/batchscore."""
    path = image_path.removeprefix("local://")
    if not path.startswith(IMAGE_ROOT + "/"):
        return None
    return repo / path[len(IMAGE_ROOT) + 1 :]
