"""A synthetic parcel-delivery lake for the example `deliveries` pipeline (regression).

Every day holds the shipments created that day (`raw/shipments/dt=D/`), keyed by a string
`shipment_id` such as `SHP-20261121-0000042` (unique across days: the day is part of it).
How long each took to deliver lands `label_lag_days` later in
`raw/shipment_outcomes/dt=D+lag/`, keyed by `label_date = D`. From `drift_from` on, routes
grow longer, warehouses fall behind and customers pick economy more often, so both the
inputs and the delivery times drift. Output depends only on (seed, rows, date), never on the
wall clock, and is vectorised like the churn seeder (`seed.py`), whose partition writer it
shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchscore.examples.seed import EPOCH, write_partition
from batchscore.storage.lake import Lake

SHIPMENTS = "shipments"
OUTCOMES = "shipment_outcomes"

CARRIERS = np.array(["dhl", "ups", "fedex", "postnl", "dpd"])
SERVICE_LEVELS = np.array(["economy", "standard", "express"])
REGIONS = np.array(["benelux", "dach", "france", "iberia", "nordics", "uk"])
SEGMENTS = np.array(["consumer", "smb", "enterprise"])

CARRIER_SHARES = [0.28, 0.2, 0.14, 0.22, 0.16]
CARRIER_FACTOR = np.array([1.0, 0.95, 0.9, 1.12, 1.05])  # relative door-to-door speed
SERVICE_SHARES = [0.35, 0.5, 0.15]
SERVICE_SHARES_DRIFTED = [0.55, 0.37, 0.08]
SERVICE_BASE_HOURS = np.array([60.0, 30.0, 12.0])
REGION_SHARES = [0.3, 0.25, 0.15, 0.1, 0.08, 0.12]
SEGMENT_SHARES = [0.6, 0.3, 0.1]
# Pickups cluster in office hours; a few come in at night.
PICKUP_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 10, 11, 12, 12, 11, 9, 6, 4, 3, 2, 1, 1]

SHIPMENTS_SCHEMA = pa.schema(
    [
        ("shipment_id", pa.string()),
        ("created_date", pa.date32()),
        ("carrier", pa.string()),
        ("service_level", pa.string()),
        ("origin_region", pa.string()),
        ("destination_region", pa.string()),
        ("distance_km", pa.float64()),
        ("weight_kg", pa.float64()),
        ("parcels", pa.int32()),
        ("declared_value_eur", pa.float64()),
        ("is_fragile", pa.bool_()),
        ("warehouse_backlog", pa.int32()),
        ("pickup_hour", pa.int32()),
        ("customer_segment", pa.string()),
        ("route_code", pa.string()),
    ]
)

OUTCOMES_SCHEMA = pa.schema(
    [
        ("shipment_id", pa.string()),
        ("label_date", pa.date32()),
        ("delivery_hours", pa.float64()),
        ("delivery_speed", pa.string()),
    ]
)
SPEEDS = ("fast", "standard", "slow")
"""`delivery_speed`, the multiclass label of the `delivery_speed` pipeline: within two days,
within three and a half, later."""
SPEED_LIMITS_H = (48.0, 84.0)


@dataclass(frozen=True)
class DeliveriesSpec:
    rows: int
    seed: int = 42
    drift_from: date | None = None
    label_lag_days: int = 3


def _drifted(spec: DeliveriesSpec, day: date) -> bool:
    return spec.drift_from is not None and day >= spec.drift_from


def _choice(rng: np.random.Generator, p: list[float], n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(p), rng.random(n) * sum(p)).clip(0, len(p) - 1)


def _categories(values: np.ndarray, index: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Strings built from category indices without a per-row Python object (nulls where `mask`)."""
    indices = pa.array(index.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values)).cast(pa.string())


def _codes(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """`prefix` + zero-padded `numbers`, built by Arrow kernels (no Python loop)."""
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def shipments_for(spec: DeliveriesSpec, day: date) -> tuple[pa.Table, np.ndarray]:
    """The shipments partition for `day` and each shipment's expected delivery hours."""
    n = spec.rows
    rng = np.random.default_rng([spec.seed, 10, (day - EPOCH).days])
    drift = _drifted(spec, day)
    # The draws below run in a fixed order: reordering them changes the data.
    c = _routes(rng, n, drift)
    c.update(_parcels(rng, n, drift))
    expected = _expected_hours(c)
    return _shipments_table(rng, day, n, c), expected


def _routes(rng: np.random.Generator, n: int, drift: bool) -> dict[str, np.ndarray]:
    """Who carries each shipment, how fast, and from where to where (drawn before `_parcels`)."""
    carrier = _choice(rng, CARRIER_SHARES, n)
    service = _choice(rng, SERVICE_SHARES_DRIFTED if drift else SERVICE_SHARES, n)
    origin = _choice(rng, REGION_SHARES, n)
    domestic = rng.random(n) < 0.45
    destination = np.where(domestic, origin, _choice(rng, REGION_SHARES, n))
    cross = origin != destination
    distance = np.where(cross, 80 + rng.gamma(3.0, 220.0, n), 5 + rng.gamma(2.0, 45.0, n))
    if drift:
        distance *= 1.35
    return {
        "carrier": carrier,
        "service": service,
        "origin": origin,
        "destination": destination,
        "cross": cross,
        "distance": np.clip(distance, 1, 5000).round(1),
    }


def _parcels(rng: np.random.Generator, n: int, drift: bool) -> dict[str, np.ndarray]:
    """What is shipped and how busy the warehouse is (drawn after `_routes`)."""
    parcels = np.minimum(1 + rng.poisson(0.4, n), 20).astype(np.int32)
    weight = np.clip(rng.lognormal(0.9, 0.8, n) * parcels, 0.05, 500).round(2)
    value = np.clip(rng.lognormal(4.2, 1.1, n), 1, 50_000).round(2)
    fragile = rng.random(n) < 0.12
    backlog = rng.poisson(rng.gamma(4.0, (45.0 if drift else 28.0), n)).clip(0, 5000).astype(np.int32)
    pickup = _choice(rng, [float(w) for w in PICKUP_WEIGHTS], n).astype(np.int32)
    segment = _choice(rng, SEGMENT_SHARES, n)
    return {
        "parcels": parcels,
        "weight": weight,
        "value": value,
        "fragile": fragile,
        "backlog": backlog,
        "pickup": pickup,
        "segment": segment,
    }


def _expected_hours(c: dict[str, np.ndarray]) -> np.ndarray:
    """Each shipment's expected delivery time: service, distance, carrier, backlog and weight."""
    hours = (
        SERVICE_BASE_HOURS[c["service"]]
        + c["distance"] / 40.0
        + 0.12 * c["backlog"]
        + 2.5 * np.sqrt(c["weight"])
        + 6.0 * c["cross"]
        + 8.0 * (c["pickup"] >= 17)
        + 3.0 * c["fragile"]
    )
    return hours * CARRIER_FACTOR[c["carrier"]]


def _shipments_table(rng: np.random.Generator, day: date, n: int, c: dict[str, np.ndarray]) -> pa.Table:
    """The partition's arrow table; route codes and null masks are the last draws."""
    stamp = day.strftime("%Y%m%d")
    return pa.Table.from_arrays(
        [
            _codes(f"SHP-{stamp}-", np.arange(1, n + 1, dtype=np.int64), 7),
            pa.array(np.full(n, np.datetime64(day), dtype="datetime64[D]")),
            _categories(CARRIERS, c["carrier"]),
            _categories(SERVICE_LEVELS, c["service"]),
            _categories(REGIONS, c["origin"]),
            _categories(REGIONS, c["destination"]),
            pa.array(c["distance"]),
            pa.array(c["weight"]),
            pa.array(c["parcels"]),
            pa.array(c["value"], mask=rng.random(n) < 0.03),
            pa.array(c["fragile"]),
            pa.array(c["backlog"]),
            pa.array(c["pickup"]),
            _categories(SEGMENTS, c["segment"], mask=rng.random(n) < 0.01),
            _codes("R-", rng.integers(1000, 10_000, n), 4),
        ],
        schema=SHIPMENTS_SCHEMA,
    )


def outcomes_for(spec: DeliveriesSpec, day: date, table: pa.Table, expected: np.ndarray) -> pa.Table:
    """How long each shipment created on `day` took: its expected hours times lognormal noise."""
    rng = np.random.default_rng([spec.seed, 11, (day - EPOCH).days])
    hours = np.clip(expected * rng.lognormal(0.0, 0.12, len(expected)), 0.5, 999.0).round(2)
    speed = pa.array(np.asarray(SPEEDS)[np.searchsorted(SPEED_LIMITS_H, hours, side="left")])
    return pa.Table.from_arrays(
        [table["shipment_id"], table["created_date"], pa.array(hours), speed], schema=OUTCOMES_SCHEMA
    )


def seed_deliveries(
    lake: Lake,
    spec: DeliveriesSpec,
    end: date,
    days: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write `days` daily shipment partitions ending at `end`, plus every outcome landed by `end`."""
    counts = {"shipment_partitions": 0, "label_partitions": 0, "rows_per_day": spec.rows}
    first = end - timedelta(days=days - 1)
    for offset in range(days):
        day = first + timedelta(days=offset)
        table, expected = shipments_for(spec, day)
        write_partition(lake, SHIPMENTS, day, table)
        counts["shipment_partitions"] += 1
        arrival = day + timedelta(days=spec.label_lag_days)
        if arrival <= end:
            write_partition(lake, OUTCOMES, arrival, outcomes_for(spec, day, table, expected))
            counts["label_partitions"] += 1
        if progress:
            drifted = ", drifted" if _drifted(spec, day) else ""
            progress(f"seeded {day.isoformat()} ({spec.rows:,} shipments{drifted})")
    return counts
