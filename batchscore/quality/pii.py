"""Personal data in what batchscore shows: values of `dataset.pii_columns` never appear in clear.

Validation results are where raw values surface (Great Expectations' unexpected-value samples
and observed values), and from them the HTML and JSON reports, the failure message, the task
log and `scoring_runs.error`. `PiiMask` replaces each such value, for expectations on a PII
column, by `pii:<16 hex>`: an HMAC-SHA256 of the value under the deployment's key, so on-call
can match a value they hold against a report without the report holding it. Without a key the
value is `[redacted]`. Features, scores, drift reports and the warehouse never carry raw PII
columns (features are derived values), so nothing else needs masking.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"
COLUMN_KWARGS = ("column", "column_A", "column_B")
LIST_KWARGS = ("column_list",)


@dataclass(frozen=True)
class PiiMask:
    """Which columns are personal data, and the key their shown values are hashed with."""

    columns: frozenset[str] = frozenset()
    key: bytes | None = None

    @classmethod
    def of(cls, columns: list[str] | tuple[str, ...], key: str | None) -> PiiMask:
        return cls(frozenset(columns), key.encode() if key else None)

    def applies(self, kwargs: dict[str, Any]) -> bool:
        """Whether an expectation with these kwargs looks at a PII column."""
        if not self.columns:
            return False
        named = {kwargs.get(k) for k in COLUMN_KWARGS}
        for k in LIST_KWARGS:
            named.update(kwargs.get(k) or [])
        return bool(self.columns & {n for n in named if isinstance(n, str)})

    def value(self, value: Any) -> Any:
        """A shown value, hashed (or redacted), numbers too (a PII column may be numeric); the
        counts and shares of an expectation's result are not values and are not passed here."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self.value(v) for v in value]
        if self.key is None:
            return REDACTED
        digest = hmac.new(self.key, str(value).encode(), hashlib.sha256).hexdigest()
        return f"pii:{digest[:16]}"


NO_PII = PiiMask()
