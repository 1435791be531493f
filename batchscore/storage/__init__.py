"""Where data lives: the lake (local folder or S3), its atomic partitions, and the warehouse.

Owns ``lake`` (partition layout, ``_SUCCESS`` markers, staged commits, checksums),
``parquet`` (reading a partition's files and footers), ``manifest`` (the typed manifests written
beside partitions, one format and one reader), ``reuse`` (stage fingerprints: when a rerun may
reuse a partition), ``object_store`` (S3 through boto3) and ``warehouse`` (DuckDB and
PostgreSQL, write-audit-publish). It knows nothing of models, Spark or Airflow: it imports only
``errors``, ``settings`` and ``telemetry``.
"""
