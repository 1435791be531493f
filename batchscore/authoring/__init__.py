"""Pipeline authoring: `batchscore pipelines new` and `batchscore pipelines validate`.

It owns profiling one raw partition with pyarrow (`profile`), turning the profile into a
feature plan and the three expectation suites (`design`, `expectations`), writing the
pipeline YAML, the features module and the suites for review, atomically and only after every
check passed (`scaffold`), and checking that an authored pipeline's files agree (`check`).
It imports ``errors``, ``settings``, ``storage``, ``quality`` and ``features``; never ``jobs``,
``models``, ``orchestration`` or ``cli``.
"""
