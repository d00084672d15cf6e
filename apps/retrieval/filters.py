"""Metadata filters for retrieval: validated here, applied inside the SQL by the selector.

A filter is a JSON object of document-metadata keys to a scalar (exact match) or a list of
scalars (any of them), plus the reserved key ``document_ids`` (a list of document ids):
``{"lang": "en", "year": [2023, 2024], "document_ids": [4, 9]}``. Bounded: at most
``MAX_KEYS`` keys of ``MAX_VALUES`` values, string values of at most
``SLUICE_FILTER_VALUE_MAX_CHARS`` characters, ``SLUICE_FILTERS_MAX_BYTES`` as JSON (filters
travel in every queued message and the query log).
"""
import json

from django.conf import settings

MAX_KEYS = 20
MAX_VALUES = 100
SCALARS = (str, int, float, bool)


class FilterError(ValueError):
    """The filter is malformed; the message names the key and what is accepted."""


def filters_validate(filters) -> dict:
    if filters in (None, {}):
        return {}
    if not isinstance(filters, dict):
        raise FilterError("filters must be a JSON object of metadata keys to values")
    if len(filters) > MAX_KEYS:
        raise FilterError(f"at most {MAX_KEYS} filter keys are accepted")
    size = len(json.dumps(filters, separators=(",", ":")).encode())
    if size > settings.SLUICE_FILTERS_MAX_BYTES:
        raise FilterError(f"filters are {size} bytes as JSON; at most {settings.SLUICE_FILTERS_MAX_BYTES} are "
                          "accepted (SLUICE_FILTERS_MAX_BYTES)")
    longest = settings.SLUICE_FILTER_VALUE_MAX_CHARS
    clean: dict = {}
    for key, value in filters.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise FilterError("filter keys must be non-empty strings of at most 100 characters")
        if key == "document_ids":
            if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise FilterError("document_ids must be a non-empty list of integers")
            clean[key] = value[:MAX_VALUES]
            continue
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > MAX_VALUES or not all(isinstance(v, SCALARS) for v in values):
            raise FilterError(
                f"filter {key!r} must be a string, number or boolean, or a list of 1 to {MAX_VALUES} of them"
            )
        if any(isinstance(v, str) and len(v) > longest for v in values):
            raise FilterError(f"filter {key!r} has a value longer than {longest} characters "
                              "(SLUICE_FILTER_VALUE_MAX_CHARS); no document metadata value that long is filterable")
        clean[key] = values
    return clean


def filters_sql(filters: dict, *, alias: str = "c") -> tuple[str, list]:
    """SQL conditions (joined with AND, starting with AND) and their parameters."""
    parts, params = [], []
    for key, values in filters.items():
        if key == "document_ids":
            parts.append(f"{alias}.document_id = ANY(%s)")
            params.append(values)
            continue
        # `@>` with jsonb_path_ops can use the GIN index on document_metadata.
        ors = " OR ".join([f"{alias}.document_metadata @> %s::jsonb"] * len(values))
        parts.append(f"({ors})")
        params.extend(json.dumps({key: v}) for v in values)
    return "".join(f" AND {p}" for p in parts), params
