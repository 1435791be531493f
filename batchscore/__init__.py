"""batchscore: nightly batch scoring with Airflow 3, Spark, Great Expectations and Evidently.

The library is layered; a module imports only from its own package and from packages in
lower layers (``tests/unit/test_layout.py`` checks it on every import, lazy ones included):

1. ``errors``, ``settings``: the failure taxonomy and the typed pipeline/platform settings.
2. ``telemetry``: alerts and the cost (CPU seconds) of a stage.
3. ``storage`` (lake, object store, warehouse) and ``compute`` (the Spark session).
4. ``models`` (registry, model cards, scoring engine) and ``quality`` (validation gates, drift).
5. ``examples``: the synthetic example lake.
6. ``jobs`` and ``features`` (top-level packages): one module per stage, feature definitions.
7. ``orchestration``: DAG factories, the Airflow runner and Airflow services.
8. ``cli``: the ``batchscore`` command, one module per command group.
"""
