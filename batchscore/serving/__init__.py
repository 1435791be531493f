"""`batchscore serve`: a read-only HTTP API over the scores the nightly runs publish.

`readers.py` reads published slices from the warehouse (DuckDB read-only connections per
request, PostgreSQL through a small connection pool) so that every answer comes from ONE
slice (table, run date, model version); `auth.py` checks bearer tokens against hashed,
per-pipeline scopes; `app.py` is the FastAPI application (scores, batches, pipelines,
health, ETags, one error shape). It sits beside orchestration: it imports storage,
settings, errors and telemetry, and only the CLI imports it.
"""
