"""Stage fingerprints and reuse: what changes a fingerprint, and a rerun that finds a complete
output with its fingerprint reuses it untouched (build_features on a real Spark session)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import py_compile
import sys
from datetime import date
from pathlib import Path

import pytest

from batchscore.examples.seed import SeedSpec, customers_snapshot, write_partition
from batchscore.models.inference import ModelRef
from batchscore.models.scoring_pass import SCORING_STAGE, scores_fingerprint
from batchscore.settings import Settings
from batchscore.storage.lake import Lake, PartitionError
from batchscore.storage.manifest import StageManifest
from batchscore.storage.reuse import MANIFEST, code_hashes
from features import Feature, load_feature_set
from jobs import build_features, validate
from jobs.build_features import features_fingerprint

DAY = date(2026, 11, 21)


def with_pipeline(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update=changes)})


def ref(**changes: object) -> ModelRef:
    base = ModelRef("churn_xgb", 1, "xgboost", "/models/v1/model.ubj", "a" * 64, ("f1", "f2"), "auto")
    return dataclasses.replace(base, **changes)


def test_features_fingerprint_follows_inputs_definitions_and_source(churn_settings, tmp_path, monkeypatch):
    feature_set = load_feature_set(churn_settings.pipeline.features)
    base = features_fingerprint(churn_settings, feature_set, "raw-1")
    assert features_fingerprint(churn_settings, feature_set, "raw-1") == base, "deterministic"
    assert features_fingerprint(churn_settings, feature_set, "raw-2") != base, "other raw partition"

    first = feature_set.features[0]
    redefined = dataclasses.replace(
        feature_set, features=(Feature(first.name, f"({first.expr}) + 1"), *feature_set.features[1:])
    )
    assert features_fingerprint(churn_settings, redefined, "raw-1") != base, "other definitions"

    # The feature module's own source counts, not only the definitions it exports.
    module = tmp_path / "reuse_probe_features.py"
    module.write_text("from features.churn import FEATURE_SET\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = with_pipeline(churn_settings, features="reuse_probe_features")
    before = features_fingerprint(probe, feature_set, "raw-1")
    module.write_text("from features.churn import FEATURE_SET  # the same set, other code\n")
    importlib.invalidate_caches()
    assert features_fingerprint(probe, feature_set, "raw-1") != before
    sys.modules.pop("reuse_probe_features", None)


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    """A tiny package: `stage` imports `helpers` (absolute) and, lazily, `deep` (relative);
    `helpers` imports `deep` and batchscore; `unrelated` is imported by nobody."""
    package = tmp_path / "reuse_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""probe"""\n')
    (package / "stage.py").write_text(
        "import json\nfrom reuse_probe_pkg import helpers\n\n\ndef late():\n    from .deep import VALUE\n"
    )
    (package / "helpers.py").write_text(
        "from batchscore.errors import BadInput\nfrom reuse_probe_pkg.deep import VALUE\n"
    )
    (package / "deep.py").write_text("VALUE = 1\n")
    (package / "unrelated.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m.split(".")[0] == "reuse_probe_pkg"]:
        sys.modules.pop(name)


def test_code_hashes_follow_the_import_graph(probe_package):
    hashes = code_hashes(["reuse_probe_pkg.stage"])
    assert set(hashes) == {
        "reuse_probe_pkg",
        "reuse_probe_pkg.stage",
        "reuse_probe_pkg.helpers",
        "reuse_probe_pkg.deep",
        "batchscore",
        "batchscore.errors",
    }, "first-party modules reached through imports, lazy and relative ones included; no json"
    assert code_hashes(["reuse_probe_pkg.stage"]) == hashes, "deterministic"

    (probe_package / "unrelated.py").write_text("VALUE = 3\n")
    assert code_hashes(["reuse_probe_pkg.stage"]) == hashes, "a module nothing imports decides nothing"
    (probe_package / "deep.py").write_text("VALUE = 2\n")
    changed = code_hashes(["reuse_probe_pkg.stage"])
    assert {m for m in hashes if changed[m] != hashes[m]} == {"reuse_probe_pkg.deep"}

    with pytest.raises(ModuleNotFoundError, match="cannot fingerprint no_such_module_here"):
        code_hashes(["no_such_module_here"])


def test_code_hashes_read_imports_from_bytecode_when_no_source_ships(probe_package):
    with_source = code_hashes(["reuse_probe_pkg.stage"])
    for name in ("stage", "helpers"):
        source = probe_package / f"{name}.py"
        py_compile.compile(str(source), cfile=str(probe_package / f"{name}.pyc"), doraise=True)
        source.unlink()
    importlib.invalidate_caches()
    assert set(code_hashes(["reuse_probe_pkg.stage"])) == set(with_source)


def test_stage_fingerprints_cover_the_code_their_stage_imports(churn_settings):
    scoring = code_hashes([SCORING_STAGE])
    assert {
        "jobs.score",
        "batchscore.models.scoring_driver",
        "batchscore.models.scoring",
        "batchscore.models.reasons",
        "batchscore.models.saabas",
        "batchscore.models.inference",
    } <= set(scoring)
    features = code_hashes([build_features.STAGE_MODULE, churn_settings.pipeline.features])
    assert {"jobs.build_features", "features", "features.churn", "batchscore.quality.quarantine_gate"} <= set(
        features
    )


def test_scores_fingerprint_follows_features_models_and_value_changing_settings(churn_settings):
    manifest = StageManifest(fingerprint="features-fp", rows=10)
    base = scores_fingerprint(churn_settings, manifest, "features-bytes", [ref()])
    assert (
        scores_fingerprint(churn_settings, dataclasses.replace(manifest), "features-bytes", [ref()]) == base
    )
    changed = {
        "features bytes": scores_fingerprint(churn_settings, manifest, "other-bytes", [ref()]),
        "features fingerprint": scores_fingerprint(
            churn_settings, dataclasses.replace(manifest, fingerprint="x"), "features-bytes", [ref()]
        ),
        "model version": scores_fingerprint(churn_settings, manifest, "features-bytes", [ref(version=2)]),
        "artifact": scores_fingerprint(churn_settings, manifest, "features-bytes", [ref(sha256="b" * 64)]),
        "backend": scores_fingerprint(churn_settings, manifest, "features-bytes", [ref(backend="onnx")]),
        "challenger": scores_fingerprint(
            churn_settings, manifest, "features-bytes", [ref(), ref(version=2, sha256="c" * 64)]
        ),
        "inference device": scores_fingerprint(
            with_inference(churn_settings, device="cpu"), manifest, "features-bytes", [ref()]
        ),
    }
    assert all(fingerprint != base for fingerprint in changed.values()), changed
    assert len(set(changed.values())) == len(changed)
    # Batch size changes how fast scores come, not their values: the scores stay reusable.
    faster = scores_fingerprint(
        with_inference(churn_settings, batch_rows=1024), manifest, "features-bytes", [ref()]
    )
    assert faster == base
    # Where an executor finds the artifact is not what it is: its checksum is.
    assert scores_fingerprint(churn_settings, manifest, "features-bytes", [ref(artifact_path="/x")]) == base


def with_inference(settings: Settings, **changes: object) -> Settings:
    inference = settings.pipeline.inference.model_copy(update=changes)
    return with_pipeline(settings, inference=inference)


def data_file_ids(partition: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in partition.glob("*.parquet")}


def test_build_features_reuses_a_complete_partition_with_its_fingerprint(spark, churn_settings):
    lake = Lake(churn_settings.platform.lake_url)
    table, _ = customers_snapshot(SeedSpec(rows=300), DAY)
    write_partition(lake, "customers", DAY, table)
    final = lake.features_partition("churn", DAY)
    validate.run(churn_settings, DAY, "raw")  # churn has a quarantine: its verdict comes first

    first = build_features.run(churn_settings, DAY, spark)
    assert first["reused"] is False and first["rows"] == 300
    manifest = json.loads((final / MANIFEST).read_text())
    assert manifest["fingerprint"] == first["fingerprint"] and manifest["result"]["rows"] == 300
    assert manifest["input_checksum"] == first["input_checksum"] and manifest["rows"] == 300
    files = data_file_ids(final)

    again = build_features.run(churn_settings, DAY, spark)
    assert again["reused"] is True and again["computed_at"] == manifest["computed_at"]
    assert {k: again[k] for k in first if k not in ("seconds", "reused")} == {
        k: first[k] for k in first if k not in ("seconds", "reused")
    }
    assert again["seconds"] == manifest["result"]["seconds"], "the seconds computing it took"
    assert again["reuse_seconds"] < first["seconds"]
    assert data_file_ids(final) == files, "the partition was not rewritten"

    forced = build_features.run(churn_settings, DAY, spark, force=True)
    assert forced["reused"] is False and data_file_ids(final) != files
    files = data_file_ids(final)

    # A data file gone (its _SUCCESS and manifest still there) is recomputed, not trusted.
    victim = sorted(final.glob("*.parquet"))[0]
    victim.unlink()
    assert build_features.run(churn_settings, DAY, spark)["reused"] is False
    files = data_file_ids(final)

    # A new raw partition for the day (a re-landed upstream file) is a new input.
    table, _ = customers_snapshot(SeedSpec(rows=300, seed=99), DAY)
    write_partition(lake, "customers", DAY, table)
    with pytest.raises(PartitionError, match="changed since validate_raw held its rows aside"):
        build_features.run(churn_settings, DAY, spark)  # not gated yet
    validate.run(churn_settings, DAY, "raw")
    rebuilt = build_features.run(churn_settings, DAY, spark)
    assert rebuilt["reused"] is False and rebuilt["fingerprint"] != first["fingerprint"]
    assert data_file_ids(final) != files


def test_the_run_summary_names_the_reused_stages_and_a_no_op(churn_settings, capsys):
    from batchscore.cli.run import _print_summary, _print_task

    reused = {"reused": True, "computed_at": "2026-11-22T01:02:03+00:00", "seconds": 12.5, "rows": 3000}
    results = {
        "resolve_model": {"model_name": "churn_xgb", "model_version": 1},
        "validate_raw": {"stage": "raw", "rows": 3000, "report": "raw.html"},
        "build_features": {"stage": "build_features", **reused},
        "validate_features": {"report": "features.html"},
        "score": {"stage": "score", **reused},
        "validate_scores": {"report": "scores.html"},
        "publish": {
            "stage": "publish",
            "skipped": "already published with the same inputs and model version",
            "rows": 3000,
            "seconds": 0.0,
            "published_by": "manual__2026-11-21T00:00:00+00:00",
            "published_at": "2026-11-22 01:03:00+00:00",
        },
        "drift_report": {"report": "drift.html"},
        "drift_gate": {"decision": "pass", "drifted_share": 0.0, "drifted_features": []},
    }
    outcome = {"state": "success", "run_id": "manual__x", "seconds": 30.0, "results": results, "errors": {}}
    _print_task("score", "success", results["score"])
    _print_task("publish", "success", results["publish"])
    _print_summary(churn_settings, DAY, outcome)
    out = capsys.readouterr().out
    assert f"{'score':<20}  3,000 rows, reused (computed 2026-11-22T01:02:03+00:00)" in out
    assert "12.5s" not in out, "a reused stage's compute seconds are not this run's"
    assert f"{'publish':<20}  3,000 rows, skipped: already published with the same inputs" in out
    assert "-> unchanged 3,000" in out and "-> published" not in out
    assert "reused:     build_features, score (inputs, feature set, model and settings unchanged" in out
    assert (
        "no-op:      2026-11-21 was already published with the same inputs and model version "
        "(run manual__2026-11-21T00:00:00+00:00, 2026-11-22 01:03:00+00:00)"
    ) in out
