"""The score stage in Spark: Python workers read row groups, score, write; the driver commits.

Small features partitions are written with pyarrow (several files and row groups, so
several tasks run on the shared local[2] session), models are trained on the fly.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchscore.models import devices, scoring_driver
from batchscore.models.inference import ModelRef, ScoringError
from batchscore.models.registry import BACKEND_ARTIFACTS, ModelRegistry, RegistryError
from batchscore.models.scoring import (
    WorkItem,
    plan_work,
    score_batches,
    threads_per_task,
)
from batchscore.models.scoring_pass import model_ref
from batchscore.settings import Settings
from batchscore.storage.lake import Lake, partition_checksum
from batchscore.storage.reuse import MANIFEST
from features.churn import FEATURE_SET
from jobs import publish
from jobs import score as job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("spark")]

DAY = date(2026, 11, 21)
NAMES = FEATURE_SET.names
KEY = FEATURE_SET.entity_key
ROWS = 4_000


def features_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(NAMES))).astype(np.float32)
    columns: dict[str, pa.Array] = {KEY: pa.array(np.arange(rows, dtype=np.int64) * 7 + 3)}
    for j, name in enumerate(NAMES):
        missing = rng.random(rows) < 0.05
        columns[name] = pa.array(x[:, j], mask=missing)  # nulls: missing values reach the model as NaN
    return pa.table(columns)


def write_features_partition(
    lake: Lake, table: pa.Table, feature_hash: str = FEATURE_SET.content_hash
) -> Path:
    """4 files of 2 row groups each, plus the manifest build_features writes."""
    path = lake.features_partition("churn", DAY)
    path.mkdir(parents=True, exist_ok=True)
    per_file = table.num_rows // 4
    for n in range(4):
        part = table.slice(n * per_file, per_file if n < 3 else table.num_rows - 3 * per_file)
        pq.write_table(part, path / f"part-{n:05d}.parquet", row_group_size=per_file // 2 + 1)
    manifest = {
        "feature_set": {"name": FEATURE_SET.name, "version": FEATURE_SET.version, "hash": feature_hash},
        "rows": table.num_rows,
        "input_checksum": "0" * 64,
    }
    (path / MANIFEST).write_text(json.dumps(manifest))
    (path / "_SUCCESS").touch()
    return path


def register_model(registry: ModelRegistry, seed: int, rounds: int) -> int:
    import xgboost as xgb

    from batchscore.models.training import export

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, len(NAMES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 3] * (seed + 1) + rng.normal(0, 0.5, len(x)) > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 2},
        xgb.DMatrix(x, label=y, feature_names=NAMES),
        num_boost_round=rounds,
    )
    artifacts = registry.root.parent / f"artifacts-{seed}"
    artifacts.mkdir(parents=True)
    export(booster, NAMES, x[:200], artifacts)
    meta = {"feature_set": {"name": FEATURE_SET.name, "hash": FEATURE_SET.content_hash, "features": NAMES}}
    return registry.register(artifacts, meta).version


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A registry with two versions (trained once per module), copied into each test's lake."""
    lake = Lake(str(tmp_path_factory.mktemp("models") / "lake"))
    registry = ModelRegistry(lake, "churn_xgb")
    assert register_model(registry, seed=0, rounds=20) == 1
    assert register_model(registry, seed=1, rounds=25) == 2
    registry.move_alias("champion", 1, reason="test")
    return registry.root


@pytest.fixture
def lake(churn_settings: Settings, models: Path) -> Lake:
    import shutil

    lake = Lake(churn_settings.platform.lake_url)
    shutil.copytree(models, lake.models_dir("churn_xgb"))
    return lake


def with_inference(settings: Settings, **changes: object) -> Settings:
    pipeline = settings.pipeline
    if "explain" in changes:
        pipeline = pipeline.model_copy(update={"explain": changes.pop("explain")})
    if "challenger_alias" in changes:
        model = pipeline.model.model_copy(update={"challenger_alias": changes.pop("challenger_alias")})
        pipeline = pipeline.model_copy(update={"model": model})
    inference = pipeline.inference.model_copy(update=changes)
    return settings.model_copy(update={"pipeline": pipeline.model_copy(update={"inference": inference})})


def in_process_scores(
    lake: Lake, version: int, table: pa.Table, backend: str = "xgboost"
) -> dict[int, float]:
    mv = ModelRegistry(lake, "churn_xgb").get(version)
    artifact = BACKEND_ARTIFACTS[backend]
    ref = ModelRef(
        "churn_xgb",
        version,
        backend,
        str(mv.artifact(artifact)),
        mv.metadata["artifacts"][artifact]["sha256"],
        tuple(NAMES),
    )
    out = pa.Table.from_batches(list(score_batches(table.to_batches(), ref, KEY, DAY)))
    return dict(zip(out.column(KEY).to_pylist(), out.column("score").to_pylist(), strict=True))


def read_scores(partition: Path) -> pa.Table:
    return pa.Table.from_batches(
        [b for p in sorted(partition.glob("*.parquet")) for b in pq.read_table(p).to_batches()]
    )


def staging_leftovers(lake: Lake) -> list[Path]:
    return [p for p in (lake.root / "_staging").rglob("*") if p.is_file()]


def test_score_stage_writes_exactly_the_in_process_scores(spark, churn_settings, lake, monkeypatch):
    monkeypatch.setattr(scoring_driver, "MAX_TASK_ROWS", 500)  # 4,000 rows on 2 slots -> 8 tasks
    table = features_table(ROWS)
    write_features_partition(lake, table)
    result = job.run(churn_settings, DAY, 1, spark)

    final = lake.scores_partition("churn", 1, DAY)
    assert result.rows == ROWS and result.details["tasks"] == 8 and result.details["device"] == "cpu"
    assert Lake.is_complete(final)
    assert sorted(p.name for p in final.glob("*.parquet")) == [f"part-{i:05d}.parquet" for i in range(8)]
    scores = read_scores(final)
    assert scores.schema.names == [KEY, "score", "model_version", "run_date"]
    assert [str(t) for t in scores.schema.types] == ["int64", "double", "int64", "date32[day]"]
    assert set(scores.column("model_version").to_pylist()) == {1}
    assert set(scores.column("run_date").to_pylist()) == {DAY}
    got = dict(zip(scores.column(KEY).to_pylist(), scores.column("score").to_pylist(), strict=True))
    expected = in_process_scores(lake, 1, table)
    assert len(got) == ROWS and got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in got) < 1e-6
    assert staging_leftovers(lake) == []

    # A forced rerun replaces the partition with identical files; the model is not loaded again.
    checksum = partition_checksum(final)
    again = job.run(churn_settings, DAY, 1, spark, force=True)
    assert again.reused is False
    assert partition_checksum(final) == checksum
    loads, loads_again = result.details["worker_model_loads"], again.details["worker_model_loads"]
    common = loads.keys() & loads_again.keys()
    assert common, "the reused Python workers ran tasks in both runs"
    assert all(loads_again[pid] == loads[pid] for pid in common)


def file_ids(partition: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in partition.glob("*.parquet")}


def test_a_rerun_reuses_the_scores_until_the_features_or_a_model_change(spark, churn_settings, lake):
    features = write_features_partition(lake, features_table(1_000, seed=7))
    first = job.run(churn_settings, DAY, 1, spark)
    final = lake.scores_partition("churn", 1, DAY)
    manifest = json.loads((final / MANIFEST).read_text())
    assert first.reused is False and manifest["fingerprint"] == first.details["fingerprint"]
    files = file_ids(final)

    again = job.run(churn_settings, DAY, 1, spark)
    assert again.reused is True and file_ids(final) == files, "reused, not rewritten"
    stored, reread = first.to_xcom(), again.to_xcom()
    same = {k for k in stored if k not in ("reused", "seconds", "rows_per_s")}
    assert {k: reread[k] for k in same} == {k: stored[k] for k in same}, "the same result, as XCom"
    assert job.run(with_inference(churn_settings, batch_rows=512), DAY, 1, spark).reused is True

    onnx = job.run(with_inference(churn_settings, backend="onnx", explain=None), DAY, 1, spark)
    assert onnx.reused is False and onnx.details["fingerprint"] != first.details["fingerprint"]
    assert file_ids(final) != files

    # A challenger joins the pass: both partitions are scored, then both are reused.
    ModelRegistry(lake, "churn_xgb").move_alias("challenger", 2, reason="test")
    shadow = with_inference(churn_settings, challenger_alias="challenger")
    assert job.run(shadow, DAY, 1, spark).reused is False
    both = {**file_ids(final), **file_ids(lake.scores_partition("churn", 2, DAY))}
    reused = job.run(shadow, DAY, 1, spark)
    assert reused.reused is True and reused.challenger is not None and reused.challenger.rows == 1_000
    assert {**file_ids(final), **file_ids(lake.scores_partition("churn", 2, DAY))} == both
    (lake.scores_partition("churn", 2, DAY) / "_SUCCESS").unlink()
    assert job.run(shadow, DAY, 1, spark).reused is False, "one incomplete partition rescoring all"

    # New features for the day (same manifest, other bytes) are rescored.
    files = file_ids(final)
    write_features_partition(lake, features_table(1_000, seed=8))
    assert (features / MANIFEST).is_file()
    assert job.run(shadow, DAY, 1, spark).reused is False and file_ids(final) != files


def test_onnx_backend_in_spark_agrees_with_xgboost(spark, churn_settings, lake):
    table = features_table(1_000, seed=3)
    write_features_partition(lake, table)
    job.run(with_inference(churn_settings, backend="onnx", explain=None), DAY, 1, spark)
    onnx = read_scores(lake.scores_partition("churn", 1, DAY))
    got = dict(zip(onnx.column(KEY).to_pylist(), onnx.column("score").to_pylist(), strict=True))
    expected = in_process_scores(lake, 1, table, backend="xgboost")
    assert max(abs(got[k] - expected[k]) for k in expected) < 1e-5
    # ORT runs TreeEnsemble operators on the CPU only: `auto` keeps such graphs off the GPU.
    assert devices.onnx_is_tree_ensemble(str(ModelRegistry(lake, "churn_xgb").get(1).path / "model.onnx"))


def test_shadow_scoring_writes_and_publishes_the_challenger_apart(spark, churn_settings, lake):
    table = features_table(2_000, seed=5)
    write_features_partition(lake, table)
    ModelRegistry(lake, "churn_xgb").move_alias("challenger", 2, reason="test")
    settings = with_inference(churn_settings, challenger_alias="challenger")

    result = job.run(settings, DAY, 1, spark)
    assert result.challenger is not None
    assert (result.challenger.model_version, result.challenger.rows) == (2, 2_000)
    champion = read_scores(lake.scores_partition("churn", 1, DAY))
    challenger = read_scores(lake.scores_partition("churn", 2, DAY))
    assert set(challenger.column("model_version").to_pylist()) == {2}
    for scores, version in ((champion, 1), (challenger, 2)):
        got = dict(zip(scores.column(KEY).to_pylist(), scores.column("score").to_pylist(), strict=True))
        expected = in_process_scores(lake, version, table)
        assert max(abs(got[k] - expected[k]) for k in expected) < 1e-6
    assert not np.allclose(champion.column("score").to_numpy(), challenger.column("score").to_numpy())

    # these features come from no raw partition: publish without churn's context columns
    # (nor quarantine verdict)
    output = settings.pipeline.output.model_copy(update={"context_columns": []})
    validation = settings.pipeline.validation.model_copy(update={"quarantine": None})
    settings = settings.model_copy(
        update={"pipeline": settings.pipeline.model_copy(update={"output": output, "validation": validation})}
    )
    publish.run(settings, DAY, 1, run_id="r1")
    shadow = publish.run_shadow(settings, DAY, 2, run_id="r1")
    assert shadow["table"] == "shadow_scores_churn" and shadow["rows"] == 2_000

    import duckdb

    con = duckdb.connect(settings.platform.warehouse_url.removeprefix("duckdb://"), read_only=True)
    try:
        assert con.execute("SELECT model_version, count(*) FROM scores_churn GROUP BY 1").fetchall() == [
            (1, 2000)
        ]
        assert con.execute(
            "SELECT model_version, count(*) FROM shadow_scores_churn GROUP BY 1"
        ).fetchall() == [(2, 2000)]
        champion_cols = [r[0] for r in con.execute("DESCRIBE scores_churn").fetchall()]
        assert [r[0] for r in con.execute("DESCRIBE shadow_scores_churn").fetchall()] == champion_cols
    finally:
        con.close()


def test_no_challenger_alias_means_no_shadow(spark, churn_settings, lake):
    write_features_partition(lake, features_table(500))
    result = job.run(with_inference(churn_settings, challenger_alias="challenger"), DAY, 1, spark)
    assert result.challenger is None
    assert not lake.scores_partition("churn", 2, DAY).exists()


def test_a_failed_task_leaves_no_output_and_keeps_the_previous_partition(spark, churn_settings, lake):
    features = write_features_partition(lake, features_table(ROWS))
    job.run(churn_settings, DAY, 1, spark)
    final = lake.scores_partition("churn", 1, DAY)
    before = partition_checksum(final)

    # Corrupt the data pages of one file's second row group; its footer stays readable, so the
    # plan includes it and its task fails after writing part of its output.
    victim = features / "part-00002.parquet"
    column = pq.read_metadata(victim).row_group(1).column(1)
    data = bytearray(victim.read_bytes())
    start = column.data_page_offset
    data[start : start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    victim.write_bytes(bytes(data))

    with pytest.raises(Exception, match=r"(?i)parquet|thrift|snappy|corrupt|invalid|deserializ"):
        job.run(churn_settings, DAY, 1, spark)
    assert partition_checksum(final) == before and Lake.is_complete(final)
    assert staging_leftovers(lake) == [], "no file of the failed run is left anywhere"


def test_commit_keeps_only_files_the_successful_attempts_reported(tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    for name in ("item-00000.attempt-7", "item-00001.attempt-8", "item-00001.attempt-9"):
        (attempts / f"{name}.parquet").write_text(name)
    items = [WorkItem(0, (("a", 0),), 10), WorkItem(1, (("a", 1),), 5)]
    reports = [
        {"item": 0, "model_version": 1, "file": str(attempts / "item-00000.attempt-7.parquet"), "rows": 10},
        {"item": 1, "model_version": 1, "file": str(attempts / "item-00001.attempt-9.parquet"), "rows": 5},
    ]
    staging = tmp_path / "staging"
    assert scoring_driver.commit_task_outputs(reports, items, {1: staging}) == {1: 15}
    assert {p.name: p.read_text() for p in staging.iterdir()} == {
        "part-00000.parquet": "item-00000.attempt-7",
        "part-00001.parquet": "item-00001.attempt-9",
    }
    assert [p.name for p in attempts.iterdir()] == ["item-00001.attempt-8.parquet"]  # the failed attempt's
    with pytest.raises(ScoringError, match=r"work items \[1\] reported no output"):
        scoring_driver.commit_task_outputs(reports[:1], items, {1: tmp_path / "s2"})
    with pytest.raises(ScoringError, match="unexpected task report"):
        scoring_driver.commit_task_outputs([reports[0], reports[0]], items, {1: tmp_path / "s3"})


def test_tampered_artifact_is_refused_by_the_workers(spark, churn_settings, lake):
    write_features_partition(lake, features_table(500))
    version = ModelRegistry(lake, "churn_xgb").get(1)
    ref = model_ref(churn_settings, version)
    tampered = lake.root / "tampered.ubj"
    tampered.write_bytes(Path(ref.artifact_path).read_bytes() + b"\0")
    bad = ModelRef(**{**ref.__dict__, "artifact_path": str(tampered)})
    final = lake.scores_partition("churn", 1, DAY)
    files = lake.require_complete(lake.features_partition("churn", DAY))
    with pytest.raises(ScoringError, match="fails its checksum"):
        scoring_driver.score_partition(spark, lake, files, 500, [bad], {1: final}, KEY, DAY, 1024)
    assert not final.exists() and staging_leftovers(lake) == []
    # The driver refuses a modified registry artifact before any task starts.
    (version.path / "model.ubj").write_bytes(Path(ref.artifact_path).read_bytes() + b"\0")
    with pytest.raises(RegistryError, match="fails its checksum"):
        job.run(churn_settings, DAY, 1, spark)


def test_feature_set_mismatch_refuses_to_score(spark, churn_settings, lake):
    write_features_partition(lake, features_table(500), feature_hash="f" * 64)
    with pytest.raises(ScoringError, match="feature set mismatch"):
        job.run(churn_settings, DAY, 1, spark)
    assert not lake.scores_partition("churn", 1, DAY).exists()


@pytest.mark.slow
@pytest.mark.skipif(devices.gpu_available(), reason="the CPU fallback is what is under test")
def test_cuda_without_a_gpu_fails_clearly_and_auto_falls_back(spark, churn_settings, lake):
    write_features_partition(lake, features_table(500))
    with pytest.raises(ScoringError, match="'cuda' but there is no usable GPU for the xgboost backend"):
        job.run(with_inference(churn_settings, device="cuda"), DAY, 1, spark)
    assert not lake.scores_partition("churn", 1, DAY).exists()
    result = job.run(with_inference(churn_settings, device="auto"), DAY, 1, spark)
    assert result.details["device"] == "cpu" and result.rows == 500


def test_plan_balances_row_groups_across_tasks(tmp_path):
    table = features_table(1_000)
    paths = []
    for n, rows in enumerate((300, 300, 400)):
        path = tmp_path / f"part-{n}.parquet"
        pq.write_table(table.slice(0, rows), path, row_group_size=100)
        paths.append(path)
    items = plan_work(paths, tasks=4)
    assert [item.rows for item in items] == [200, 300, 200, 300]
    assert [rg for item in items for rg in item.row_groups] == [
        (str(p), i) for p, n in zip(paths, (3, 3, 4), strict=True) for i in range(n)
    ]
    assert len(plan_work(paths, tasks=50)) == 10  # never more tasks than row groups
    assert threads_per_task(total_cores=2, items=8, task_cpus=1, executor_cores=2) == 1
    assert threads_per_task(total_cores=8, items=1, task_cpus=1, executor_cores=8) == 8
    assert threads_per_task(total_cores=16, items=2, task_cpus=1, executor_cores=4) == 4


@pytest.mark.skipif(devices.gpu_available(), reason="the no-GPU error is what is under test")
def test_bench_cuda_mode_fails_clearly_without_a_gpu(tmp_path):
    from bench import scoring as bench

    with pytest.raises(
        SystemExit, match=r"--device cuda: inference\.device is 'cuda' but there is no usable GPU"
    ):
        bench.main(["--device", "cuda", "--rows", "1000", "--out", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()
