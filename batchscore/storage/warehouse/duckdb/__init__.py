"""The embedded DuckDB backend (`duckdb:///path/to/file.duckdb`): one file, the default warehouse.

`store.py` is the `Warehouse` (narrow slice rows behind views, optimistic transactions retried
on conflict), `tables.py` the scores tables' shape, `contract.py` and `companions.py` the
output contract, reasons and quarantine in DuckDB's SQL, `reader.py` the read API's reader.
"""

from batchscore.storage.warehouse.duckdb.store import DuckDBWarehouse

__all__ = ["DuckDBWarehouse"]
