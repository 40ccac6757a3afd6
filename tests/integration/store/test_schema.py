"""The migrations and ``schema.py`` describe the same tables."""

from __future__ import annotations

from sqlalchemy import inspect

from modelyard.config import Settings
from modelyard.store.database import Database
from modelyard.store.schema import metadata


def test_migrated_database_has_every_table_and_column_of_the_schema(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    inspector = inspect(db.engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    db.dispose()
