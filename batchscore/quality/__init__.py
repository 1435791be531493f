"""Data quality: the validation gates (column contract, Great Expectations suites, reports),
the raw gate's row quarantine (`quarantine`, `quarantine_gate`), drift statistics with
Evidently reports, and realized and estimated performance once labels land (`evaluation`,
`outcome_data`). Imports ``storage``, ``model_metrics`` and the layers below them; never
``models``, ``jobs`` or ``orchestration``, so a gate judges data, not the model code.
"""
