"""Models: the pickle-free registry (versions, aliases with compare-and-swap and history,
model cards) and the scoring engine (XGBoost and ONNX Runtime, CPU or GPU, work planning
across Spark tasks). Imports ``storage`` and the layers below it; never ``quality``,
``jobs`` or ``orchestration``.
"""
