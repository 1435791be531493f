"""Schema validation of Kubernetes objects, offline.

Core kinds: kubernetes-validate's bundled OpenAPI schemas, strict (unknown fields fail).
Custom resources: the openAPIV3Schema of the CRDs vendored under infra/k8s/crds/, with
jsonschema, plus the unknown-field check an API server with strict field validation does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33.0"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def where(path: Iterable[Any]) -> str:
    """`spec.containers[0].image` from a jsonschema path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(top level)"


def load_crds(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version of every CRD file."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields a structural schema does not declare (the API server would drop or reject them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif "additionalProperties" not in schema:
                found.append(f"{path}.{key}: unknown field")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{n}]")
    return found


def metadata_problems(obj: dict[str, Any]) -> list[str]:
    """What the API server checks in metadata before any schema: the name's syntax."""
    name = (obj.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        return ["metadata.name: missing"]
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        return [f"metadata.name: {name!r} is not a DNS-1123 subdomain"]
    return []


def validate_custom(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every schema error of a custom resource, then its unknown fields."""
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    found = [f"{where(e.absolute_path)}: {e.message}" for e in errors]
    found += [f.lstrip(".") for f in unknown_fields(obj.get("spec"), schema["properties"]["spec"], ".spec")]
    return found


def validate_core(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """The first strict-schema error of a built-in kind, if any."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where(exc.absolute_path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def validate_object(obj: Any, crds: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Schema problems of one object, whatever its kind."""
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return ["not a Kubernetes object (apiVersion and kind are required)"]
    found = metadata_problems(obj)
    schema = crds.get((obj["apiVersion"], obj["kind"]))
    if schema is not None:
        return found + validate_custom(obj, schema)
    return found + validate_core(obj)
