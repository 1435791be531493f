"""Models: the pickle-free registry (versions, aliases with compare-and-swap and history,
model cards), the model a run is pinned to (`pinned`), what the score stage hands on (`scored`), training (`training`), the promotion rule (`promotion`) and the scoring engine:
one scoring pass (`scoring_pass`: the models of the day, checks, fingerprint), its Spark driver
(`scoring_driver`) and its workers (`scoring`: XGBoost and ONNX Runtime, CPU or GPU). Imports
``storage``, ``features``, ``model_metrics`` and the layers below them; never ``quality``,
``jobs`` or ``orchestration``.
"""
