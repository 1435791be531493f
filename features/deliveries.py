"""Delivery-time features over the `shipments` table.

Categorical columns become ordinal codes declared here, in one place, so training and scoring
encode them alike; a value not listed (a new carrier, a new region) encodes to NULL, which
XGBoost treats as missing, instead of silently taking another value's code.
`route_code` is left out on purpose: thousands of distinct codes, most seen a few times a
day, so an ordinal code would be arbitrary and a model would memorise it rather than learn.
"""

from features import Feature, FeatureSet

CARRIER_CODES = ("dhl", "ups", "fedex", "postnl", "dpd")
SERVICE_LEVEL_CODES = ("economy", "standard", "express")  # ordered slow to fast
REGION_CODES = ("benelux", "dach", "france", "iberia", "nordics", "uk")
SEGMENT_CODES = ("consumer", "smb", "enterprise")  # ordered small to large


def ordinal(column: str, values: tuple[str, ...]) -> str:
    """`CASE column WHEN values[0] THEN 0 ... END`: the value's position, NULL when unlisted."""
    cases = " ".join(f"WHEN '{value}' THEN {code}" for code, value in enumerate(values))
    return f"CASE {column} {cases} END"


FEATURE_SET = FeatureSet(
    name="deliveries_features",
    version=1,
    source_dataset="shipments",
    entity_key="shipment_id",
    features=(
        Feature("distance_km", "distance_km"),
        Feature("weight_kg", "weight_kg"),
        Feature("parcels", "parcels"),
        Feature("declared_value_eur", "declared_value_eur", nullable=True),
        Feature("is_fragile", "CASE WHEN is_fragile THEN 1 ELSE 0 END"),
        Feature("warehouse_backlog", "warehouse_backlog"),
        Feature("pickup_hour", "pickup_hour"),
        Feature("carrier_code", ordinal("carrier", CARRIER_CODES), nullable=True),
        Feature("service_level_code", ordinal("service_level", SERVICE_LEVEL_CODES), nullable=True),
        Feature("origin_region_code", ordinal("origin_region", REGION_CODES), nullable=True),
        Feature("destination_region_code", ordinal("destination_region", REGION_CODES), nullable=True),
        Feature("customer_segment_code", ordinal("customer_segment", SEGMENT_CODES), nullable=True),
        Feature(
            "weight_per_parcel",
            "weight_kg / GREATEST(parcels, 1)",
            description="average parcel weight; heavy single parcels go by freight",
        ),
        Feature(
            "is_cross_region",
            "CASE WHEN origin_region <> destination_region THEN 1 ELSE 0 END",
            description="crosses between regional hubs (0 when either region is missing)",
        ),
        Feature(
            "is_late_pickup",
            "CASE WHEN pickup_hour >= 17 THEN 1 ELSE 0 END",
            description="picked up after the evening cut-off, so it waits for the next line haul",
        ),
    ),
)
