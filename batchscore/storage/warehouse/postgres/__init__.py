"""The PostgreSQL backend (`postgresql://user@host:port/db[?schema=name]`), for shared deployments.

`store.py` is the `Warehouse` (one partition per published slice, COPY then attach in one
transaction), `records.py` the run, drift and event records, `sql.py` and `binary.py` its SQL
and the binary COPY stream, `contract.py`, `reasons.py` and `quarantine.py` the slice's
companions, `roles.py` the writer and analyst roles, `reader.py` the read API's pooled reader.
"""

from batchscore.storage.warehouse.postgres.store import PostgresWarehouse

__all__ = ["PostgresWarehouse"]
