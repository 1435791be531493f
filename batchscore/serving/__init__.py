"""`batchscore serve`: a read-only HTTP API over the scores the nightly runs publish.

It reads published slices through the warehouse interface's reader
(`batchscore.storage.warehouse.open_reader`: each backend's slice-consistent reader), so that
every answer comes from ONE slice (table, run date, model version); `auth.py` checks bearer tokens against hashed,
per-pipeline scopes; `app.py` is the FastAPI application (scores, batches, pipelines,
health, ETags, one error shape). It sits beside orchestration: it imports storage,
settings, errors and telemetry, and only the CLI imports it.
"""
