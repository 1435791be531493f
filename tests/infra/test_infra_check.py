"""`make infra-check` (infra/check.sh) passes on this tree and fails on broken deployment files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchscore.settings import REPO_ROOT

BIN = Path(sys.executable).parent
VALIDATOR = "infra/validate_manifests.py"


def run(command: list[str], cwd: Path = REPO_ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of infra/ (and what the checks read from the rest of the repository) to break."""
    shutil.copytree(REPO_ROOT / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "requirements.txt", tmp_path)
    for folder in ("jobs", "dags", "pipelines"):
        (tmp_path / folder).symlink_to(REPO_ROOT / folder)
    return tmp_path


def replace_once(path: Path, old: str, new: str) -> None:
    """Break a file, making sure the text to break is there."""
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_infra_check_passes_on_this_tree():
    result = run(["bash", "infra/check.sh", str(BIN)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "infra-check: ok" in result.stdout
    assert "ok: 18 objects in overlays cpu, gpu" in result.stdout
    assert "ok: hadolint" in result.stdout
    assert result.stdout.count("are a complete lock") == 2


BROKEN = {
    "spark-app-replicas-two": (
        "infra/k8s/base/spark-applications.yaml",
        "    instances: 4\n",
        '    instances: "two"\n',
        "SparkApplication/batchscore-churn-build-features: spec.executor.instances: 'two' is not of type 'integer'",
    ),
    "spark-app-unknown-field": (
        "infra/k8s/overlays/gpu/score-on-gpu.yaml",
        "    cores: 8\n",
        "    corse: 8\n",
        "gpu: SparkApplication/batchscore-churn-score: spec.executor.corse: unknown field",
    ),
    "container-without-image": (
        "infra/spark/k8s/executor-pod-template.yaml",
        "      image: registry.example.com/batchscore:0.1.0\n",
        "",
        "executor-pod-template.yaml: spec.containers[0] (spark-kubernetes-executor): no image",
    ),
    "pod-template-typo": (
        "infra/spark/k8s/driver-pod-template.yaml",
        "  serviceAccountName: batchscore-spark\n",
        "  serviceAccountNmae: batchscore-spark\n",
        "Additional properties are not allowed ('serviceAccountNmae' was unexpected)",
    ),
    "executor-size-disagrees": (
        "infra/spark/k8s/spark-defaults.k8s.conf",
        "spark.executor.cores                                4\n",
        "spark.executor.cores                                6\n",
        "cpu: ConfigMap/batchscore-spark-conf spark-defaults.conf: spark.executor.cores=6 but BATCHSCORE_SPARK_EXECUTOR_CORES=4",
    ),
    "gpu-amount-disagrees": (
        "infra/spark/k8s-gpu/executor-pod-template.gpu.yaml",
        "nvidia.com/gpu: 1\n",
        "nvidia.com/gpu: 2\n",
        "spark.executor.resource.gpu.amount=1 but the executor template's nvidia.com/gpu limit is 2",
    ),
    "unknown-secret": (
        "infra/spark/k8s/driver-pod-template.yaml",
        "name: batchscore-warehouse",
        "name: warehouse-creds",
        "Secret 'warehouse-creds' is not one of the documented secrets",
    ),
    "missing-pvc": (
        "infra/k8s/base/spark-applications.yaml",
        "claimName: batchscore-lake",
        "claimName: lake",
        "PersistentVolumeClaim 'lake' is not in overlay cpu",
    ),
    "airflow-celery": (
        "infra/k8s/airflow/values.yaml",
        "executor: KubernetesExecutor",
        "executor: CeleryExecutor",
        "executor is 'CeleryExecutor', not KubernetesExecutor",
    ),
    "airflow-values-typo": (
        "infra/k8s/airflow/values.yaml",
        "fernetKeySecretName:",
        "fernetKeySecret:",
        "fernetKeySecret: not a top-level key of the Airflow chart",
    ),
    "airflow-pod-not-base": (
        "infra/k8s/airflow/pod_template.yaml",
        "    - name: base\n",
        "    - name: task\n",
        "KubernetesExecutor needs a container named 'base'",
    ),
    "wrong-spark-version": (
        "infra/k8s/base/spark-applications.yaml",
        'sparkVersion: "4.3.0"',
        'sparkVersion: "3.5.1"',
        "sparkVersion 3.5.1 is not the pinned pyspark 4.3.0",
    ),
    "not-yaml": (
        "infra/k8s/base/lake-pvc.yaml",
        "  accessModes:",
        "  accessModes: [",
        "kubectl kustomize failed",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN), ids=sorted(BROKEN))
def test_validator_fails_clearly_on_a_broken_file(tree, case):
    relative, old, new, message = BROKEN[case]
    replace_once(tree / relative, old, new)
    result = run([sys.executable, str(tree / VALIDATOR), "--repo", str(tree)])
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert all(line.startswith("FAIL ") for line in result.stderr.splitlines())


def test_validator_passes_on_the_unbroken_copy(tree):
    result = run([sys.executable, str(tree / VALIDATOR), "--repo", str(tree)])
    assert result.returncode == 0, result.stderr


def test_lock_check_fails_on_an_unpinned_dependency(tmp_path):
    (tmp_path / "pins.txt").write_text("# comment\napache-airflow==3.3.2\nPyYAML==6.0.3\n")
    (tmp_path / "resolved.txt").write_text("apache-airflow==3.3.2\npyyaml==6.0.2\nrich==15.0.0\n")
    result = run(
        [
            sys.executable,
            "infra/docker/lock_check.py",
            "--compiled",
            str(tmp_path / "resolved.txt"),
            str(tmp_path / "pins.txt"),
        ]
    )
    assert result.returncode == 1
    assert "pyyaml is pinned at 6.0.3 but resolves to 6.0.2" in result.stderr
    assert "rich==15.0.0 is needed but pinned in none of the files" in result.stderr


def test_install_scripts_check_fails_on_a_syntax_error(tree):
    replace_once(tree / "infra/docker/install_python.sh", "install() {", "install() {{")
    result = run(["bash", str(tree / "infra/docker/install_system.sh"), "--check"])
    assert result.returncode != 0
    assert "install_python.sh" in result.stderr


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install batchscore\n")
    result = run([str(BIN / "hadolint"), str(bad)])
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_entrypoint_runs_spark_executors_and_passes_other_commands_through():
    env = {
        "BATCHSCORE_ENTRYPOINT_DRY_RUN": "1",
        "SPARK_HOME": "/opt/spark",
        "JAVA_HOME": "/usr/lib/jvm/java-17",
        "SPARK_EXECUTOR_MEMORY": "8g",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.0.0.5:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "4",
        "SPARK_APPLICATION_ID": "spark-1",
        "SPARK_EXECUTOR_POD_IP": "10.0.0.9",
        "SPARK_EXECUTOR_POD_NAME": "score-exec-3",
        "SPARK_JAVA_OPT_1": "-Db=2",
        "SPARK_JAVA_OPT_0": "-Da=1",
    }
    script = "infra/docker/spark_entrypoint.sh"
    executor = run(["bash", script, "executor"], **env).stdout.splitlines()
    assert executor[:4] == ["/usr/lib/jvm/java-17/bin/java", "-Da=1", "-Db=2", "-Xms8g"]
    assert "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in executor
    assert executor[executor.index("--hostname") + 1] == "10.0.0.9"
    passthrough = run(["bash", script, "bash", "-c", "exec airflow scheduler"], **env).stdout.splitlines()
    assert passthrough == ["bash", "-c", "exec airflow scheduler"]
