"""Every warehouse backend is a package behind the one `Warehouse` interface, and the shared
suite (every test taking `warehouse` or `warehouse_url`) runs each of them."""

from __future__ import annotations

import inspect

import pytest

from batchscore.storage.warehouse import UnsupportedWarehouse, Warehouse, open_reader, open_warehouse
from batchscore.storage.warehouse.interface import BACKENDS, PublishResult, backend_for
from batchscore.storage.warehouse.reading import ScoresReader
from tests.warehouse.conftest import TESTED_BACKENDS
from tests.warehouse.slices import scores_file, target


def schemes_under_test() -> set[str]:
    return {p if isinstance(p, str) else p.values[0] for p in TESTED_BACKENDS}


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_registered_backend_implements_the_whole_interface(scheme):
    backend = backend_for(f"{scheme}://x")
    cls = backend.warehouse
    assert isinstance(cls, type) and issubclass(cls, Warehouse)
    assert not inspect.isabstract(cls), f"{cls.__name__} leaves abstract: {sorted(cls.__abstractmethods__)}"
    assert cls.__module__.startswith("batchscore.storage.warehouse."), cls.__module__
    assert cls.__module__.count(".") == 4, f"{cls.__module__}: a backend lives in a package of its own"
    # the publish sequence is shared: a backend provides the swap, never its own publish
    assert "publish_scores" not in vars(cls) and "_stage" not in vars(cls)
    assert "_swap" in vars(cls)


def test_every_registered_backend_runs_the_shared_suite():
    registered = {backend_for(f"{scheme}://x").warehouse for scheme in BACKENDS}
    tested = {backend_for(f"{scheme}://x").warehouse for scheme in schemes_under_test()}
    assert registered == tested, "add the missing backend to TESTED_BACKENDS in tests/warehouse/conftest.py"


def test_an_unknown_url_names_the_known_forms():
    with pytest.raises(UnsupportedWarehouse, match=r"duckdb:///path or postgresql://"):
        open_warehouse("mysql://localhost/db")
    with pytest.raises(ValueError, match="expected"):
        open_reader("file:///tmp/w.duckdb")


def test_publish_reports_a_typed_result_and_the_reader_sees_the_slice(warehouse, warehouse_url, tmp_path):
    result = warehouse.publish_scores(target(), scores_file(tmp_path / "s", [1, 2], [0.2, 0.8]), 2)
    assert isinstance(result, PublishResult)
    assert (result.rows, result.replaced_rows, result.table) == (2, 0, "scores_churn")
    assert {"read_audit", "swap"} <= set(result.stage_seconds)
    as_dict = result.as_dict()
    assert as_dict["rows"] == 2 and as_dict["stage_seconds"] == dict(result.stage_seconds)
    reader = warehouse.reader()
    assert isinstance(reader, ScoresReader) and type(reader) is type(open_reader(warehouse_url))
    info, _, rows = reader.lookup("churn", [1, 2, 3])
    assert (info.run_id, info.row_count) == ("run-1", 2)
    assert sorted((row["key"], row["score"]) for row in rows) == [(1, 0.2), (2, 0.8)]
