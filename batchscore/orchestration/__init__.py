"""Orchestration: the nightly and retrain DAG factories (wiring only; task bodies call
``jobs``), the in-process DagRun runner behind ``batchscore run``, and Airflow as services.
May import every platform layer and ``jobs``; nothing below imports it.
"""
