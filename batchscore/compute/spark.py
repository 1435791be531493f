"""The one place a SparkSession is built, so local and cluster runs differ only by settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from batchscore.settings import REPO_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from batchscore.settings import PlatformSettings

MIN_JAVA = 17
LOG4J_CONFIG = REPO_ROOT / "infra" / "spark" / "log4j2.properties"
_CREATING = threading.Lock()  # the warm-up thread and a stage may ask at the same time


class JavaMissing(RuntimeError):
    """Spark needs a Java runtime that is not there."""


def check_java() -> int:
    """The Java major version; fails with the fix when Java 17+ is missing."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise JavaMissing(
            f"Spark needs Java {MIN_JAVA} or newer and none was found on PATH or in JAVA_HOME. "
            "Install it (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) and retry."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise JavaMissing(f"could not read the Java version from {java}: {out.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise JavaMissing(f"Spark 4 needs Java {MIN_JAVA}+, found Java {major} at {java}")
    return major


def is_cluster(master: str) -> bool:
    """`local[...]` runs in this process; anything else (`spark://`, `yarn`, `k8s://`) is a cluster."""
    return not master.startswith("local")


def package_code(target: Path) -> Path:
    """Zip the importable code (batchscore, jobs, features) for executors, as `make package` does."""
    import zipfile

    root = REPO_ROOT
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in ("batchscore", "jobs", "features"):
            for path in sorted((root / package).rglob("*.py")):
                archive.write(path, path.relative_to(root).as_posix())
    os.replace(tmp, target)
    return target


def get_spark(platform: PlatformSettings, app_name: str = "batchscore") -> SparkSession:
    """A SparkSession for the configured master (`local[*]` by default), created once per process."""
    with _CREATING:
        return _get_spark(platform, app_name)


def _get_spark(platform: PlatformSettings, app_name: str) -> SparkSession:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    cores = os.cpu_count() or 2
    # Under spark-submit the JVM already runs with the submitted --master and options.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    builder = SparkSession.builder.appName(app_name)
    if not submitted:
        builder = (
            builder.master(platform.spark_master)
            .config("spark.driver.memory", "2g")
            .config(
                "spark.driver.extraJavaOptions",
                f"-Dderby.system.home={platform.home / 'var'} -Dlog4j.configurationFile={LOG4J_CONFIG}",
            )
        )
        if is_cluster(platform.spark_master):
            # Executors on other machines get the code as a zip (like `spark-submit --py-files`).
            code = platform.spark_py_files or package_code(platform.home / "var" / "dist" / "batchscore.zip")
            builder = (
                builder.config("spark.executor.memory", platform.spark_executor_memory)
                .config("spark.executor.cores", str(platform.spark_executor_cores))
                .config("spark.submit.pyFiles", str(code))
            )
    builder = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(2, cores * 2)))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(platform.home / "var" / "spark-warehouse"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
