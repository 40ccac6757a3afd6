"""``load_model``: from a reference to a ready predictor with nothing else set up."""

from __future__ import annotations

from modelyard.config import Settings, load_settings
from modelyard.registry.catalog import Catalog, LoadedModel
from modelyard.registry.sql_reads import SqlCatalogRepository
from modelyard.store.artifacts import open_artifact_store
from modelyard.store.reader import open_reader


def load_model(
    ref: str,
    *,
    settings: Settings | None = None,
    trusted: bool = False,
    intra_op_threads: int = 1,
) -> LoadedModel:
    """Load ``name``, ``name/3`` or ``name@alias`` from the configured home.

    Reads only what it needs (no migrations, no SQLAlchemy on the embedded
    default), so a fresh process gets its first prediction quickly.
    """
    settings = settings or load_settings()
    catalog = Catalog(
        SqlCatalogRepository(open_reader(settings.resolved_database_url)),
        open_artifact_store(
            settings.resolved_artifacts_url, cache_dir=settings.resolved_artifacts_cache
        ),
    )
    return catalog.load(ref, trusted=trusted, intra_op_threads=intra_op_threads)
