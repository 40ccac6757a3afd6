"""Column types as DuckDB names them, sorted into what the feature store cares about:
keys, times and values; and the SQL that turns a time into epoch seconds.

Pure functions of type names, so every rule about "which source column may be what"
is here and testable without data. Times become float64 epoch seconds the same way
Python's ``timedelta.total_seconds`` and numpy's ``int64 / 1e6`` do (the integer count
of the column's unit, converted to float, then divided), so an event time read
offline equals the one computed online to the last bit.
"""

from __future__ import annotations

from typing import Literal

from modelyard.errors import ValidationError
from modelyard.features.definitions import Dtype

Kind = Literal["integer", "float", "decimal", "string", "bool", "timestamp", "date", "other"]

_INTEGERS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_FLOATS = frozenset({"FLOAT", "DOUBLE"})
_SQL_OF_DTYPE: dict[str, str] = {
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "float32": "FLOAT",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
}
# Which column kinds may hold a feature declared as each dtype.
_HOLDS: dict[str, frozenset[str]] = {
    "int64": frozenset({"integer"}),
    "float64": frozenset({"integer", "float", "decimal"}),
    "float32": frozenset({"integer", "float", "decimal"}),
    "string": frozenset({"string"}),
    "bool": frozenset({"bool"}),
}


def kind(duckdb_type: str) -> Kind:
    """The kind of a DuckDB type name (``DESCRIBE``'s spelling)."""
    name = duckdb_type.upper()
    if name in _INTEGERS:
        return "integer"
    if name in _FLOATS:
        return "float"
    if name.startswith("DECIMAL"):
        return "decimal"
    if name == "VARCHAR" or name.startswith("ENUM"):
        return "string"
    if name == "BOOLEAN":
        return "bool"
    if name.startswith("TIMESTAMP"):
        return "timestamp"
    if name == "DATE":
        return "date"
    return "other"


def sql_type(dtype: Dtype) -> str:
    """The DuckDB type a feature of ``dtype`` is returned as."""
    return _SQL_OF_DTYPE[dtype]


def epoch_seconds_sql(column: str, duckdb_type: str, what: str) -> str:
    """SQL for ``column`` (already quoted) as float64 epoch seconds; a column that holds
    no time is a ``ValidationError`` naming ``what``."""
    name = duckdb_type.upper()
    found = kind(name)
    if found == "timestamp":
        if name.startswith("TIMESTAMP_NS"):
            return f"(epoch_ns({column})::DOUBLE / 1000000000.0)"
        return f"(epoch_us({column})::DOUBLE / 1000000.0)"
    if found == "date":
        return f"(epoch_us({column}::TIMESTAMP)::DOUBLE / 1000000.0)"
    if found in ("integer", "float", "decimal"):
        return f"({column}::DOUBLE + 0.0)"  # + 0.0: -0.0 becomes 0.0, as an equality sees it
    raise ValidationError(
        f"{what} must hold times (a timestamp, a date or epoch seconds), got {duckdb_type}"
    )


def is_time(duckdb_type: str) -> bool:
    return kind(duckdb_type) in ("timestamp", "date", "integer", "float", "decimal")


def key_kind(duckdb_type: str) -> Literal["integer", "string"] | None:
    """What an entity key column compares as: integers, strings, or neither (None)."""
    found = kind(duckdb_type)
    return found if found in ("integer", "string") else None


def check_holds(dtype: Dtype, duckdb_type: str, what: str) -> None:
    """Refuse a column of ``duckdb_type`` for a feature declared ``dtype``."""
    if kind(duckdb_type) not in _HOLDS[dtype]:
        raise ValidationError(f"{what} is declared {dtype} but the source holds {duckdb_type}")


def is_numeric(duckdb_type: str) -> bool:
    return kind(duckdb_type) in ("integer", "float", "decimal", "bool")
