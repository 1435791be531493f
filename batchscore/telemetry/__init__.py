"""What a run tells the people on call: alerts (log + webhook) and the CPU cost of a stage.

Owns ``alerts`` and ``costs``. Imports only ``batchscore.errors`` and ``batchscore.settings``
from the platform, so every other layer may report through it.
"""
