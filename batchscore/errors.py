"""The failure kinds batchscore distinguishes."""


class PermanentFailure(Exception):
    """Bad input or a broken contract: retrying the same task cannot succeed, so it fails at once."""


class BadInput(PermanentFailure, ValueError):
    """Input a user handed in (a model file, a name, a date) cannot be used; nothing was written.

    The message is one line naming what to fix; the CLI prints it and exits with status 2.
    """


class BadStageResult(PermanentFailure, ValueError):
    """A stage result read back from XCom lacks a field or holds the wrong type."""
