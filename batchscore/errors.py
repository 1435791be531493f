"""The failure kinds batchscore distinguishes."""


class PermanentFailure(Exception):
    """Bad input or a broken contract: retrying the same task cannot succeed, so it fails at once."""
