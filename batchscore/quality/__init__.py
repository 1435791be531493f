"""Data quality: the validation gates (column contract, Great Expectations suites, reports)
and drift statistics with Evidently reports. Imports ``storage`` and the layers below it;
never ``models``, ``jobs`` or ``orchestration``, so a gate judges data, not the model code.
"""
