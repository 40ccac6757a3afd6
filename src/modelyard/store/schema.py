"""Tables of the metadata database (SQLAlchemy Core).

This module describes the *current* schema; Alembic migrations under
``migrations/versions`` move an existing database to it step by step and are
the only thing that creates or alters tables. Times are UNIX seconds (float)
so that SQLite and PostgreSQL store and compare them the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("experiment", String(255), nullable=False, server_default="default"),
    Column("status", String(16), nullable=False),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float),
    Column("seed", BigInteger),
    Column("user", String(255)),
    Column("git_commit", String(64)),
    Column("environment", Text),  # JSON: python, platform, package versions
    Index("ix_runs_experiment_start", "experiment", "start_time"),
    Index("ix_runs_start_id", "start_time", "id"),  # runs list: newest first, paged
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

run_metrics = Table(
    "run_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),
)

run_latest_metrics = Table(
    "run_latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_run_latest_metrics_key_value", "key", "value"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

run_datasets = Table(
    "run_datasets",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("schema", Text, nullable=False),  # JSON: [[column, dtype], ...]
    Column("rows", BigInteger, nullable=False),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version", Integer, nullable=False),
    Column("flavour", String(32), nullable=False),
    Column("artifact_digest", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("signature", Text, nullable=False),  # JSON
    Column("profile_digest", String(64)),  # reference profile, an artifact (JSON)
    Column("metrics", Text, nullable=False, server_default="{}"),  # JSON
    Column("lineage", Text, nullable=False, server_default="{}"),  # JSON
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="SET NULL")),
    Column("parent_version", Integer),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255)),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("alias", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "model_id",
        Integer,
        ForeignKey("registered_models.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("alias", String(255), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(255)),
    Column("reason", Text, nullable=False, server_default=""),
    Column("at", Float, nullable=False),
    Index("ix_alias_history_model_alias", "model_id", "alias", "at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("payload", Text, nullable=False, server_default="{}"),  # JSON figures used
    Column("actor", String(255)),
    Index("ix_events_subject_at", "subject", "at"),
)

# -- monitoring (migration 0003) ---------------------------------------------------

# The inference log: one row per write-ahead log payload (a micro-batch's records of one
# deployment, model and version), kept as it was written (``monitoring.log_record``).
inference_batches = Table(
    "inference_batches",
    metadata,
    Column("id", String(32), primary_key=True),  # the first record's id; replays are idempotent
    Column("deployment", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("ts_first", Float, nullable=False),  # the records' earliest and latest times
    Column("ts_last", Float, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),  # requests answered with a status >= 400
    Column("payload", LargeBinary, nullable=False),
    Index("ix_inference_batches_deployment_ts", "deployment", "ts_first"),
)

# Which stored batch holds each logged request (migration 0010): a label's request id is
# checked with one index lookup instead of reading payloads, and ``requests show`` finds a
# request's batches the same way. One row per (request id, batch): a shadow's record of a
# request is in another batch. ``rows`` and ``status`` let feedback refuse a row the
# request never had, or a request answered with an error.
inference_requests = Table(
    "inference_requests",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("batch_id", String(32), primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Index("ix_inference_requests_batch", "batch_id"),  # the retention sweep deletes by batch
    sqlite_with_rowid=False,  # the primary key is the table: one B-tree, not two
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(128)),
    Column("row", Integer, nullable=False, server_default="0"),
    Column("entity_key", String(255)),
    Column("event_time", Float),
    Column("label", Text, nullable=False),  # JSON number, string or object (business outcome)
    Column("received_at", Float, nullable=False),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Index("ix_feedback_request_row", "request_id", "row"),
    Index("ix_feedback_entity_time", "entity_key", "event_time"),
)

drift_results = Table(
    "drift_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("window_end", Float, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("dataset_drift", Integer, nullable=False),  # 0/1, portable
    Column("share_drifted", Float, nullable=False),
    Column("report", Text, nullable=False),  # JSON of DriftReport.to_dict()
    Column("computed_at", Float, nullable=False),
    Index("ix_drift_results_deployment_end", "deployment", "window_end"),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("rule", Text, nullable=False),  # JSON: metric, comparison, threshold, window
    Column("webhook_url", Text),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("deployment", "name", name="uq_alert_rules_deployment_name"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
)

# -- deployments (migration 0004) --------------------------------------------------

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("model", String(255), nullable=False),
    Column("config", Text, nullable=False),  # JSON: champion, canary+weight, shadows, experiment
    Column("rollout", Text),  # JSON: the rollout controller's state, when one runs
    Column("revision", Integer, nullable=False),  # bumped on every change; workers poll it
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

deployment_history = Table(
    "deployment_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(255), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(255)),
    Column("reason", Text, nullable=False, server_default=""),
    Column("config", Text, nullable=False),  # JSON after the change
    Index("ix_deployment_history_deployment_revision", "deployment", "revision"),
)

# -- features (migration 0007) -----------------------------------------------------

# Entities, feature views and on-demand features as they stand (``kind`` says which).
feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(16), primary_key=True),  # entity | view | on_demand
    Column("name", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("definition", Text, nullable=False),  # JSON: the object's to_dict()
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(255)),
)

# Every change of a definition: what it became, who and when; a removal has no definition.
feature_definition_versions = Table(
    "feature_definition_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # added | changed | removed
    Column("digest", String(64)),
    Column("definition", Text),
    Column("summary", Text, nullable=False, server_default=""),
    Column("at", Float, nullable=False),
    Column("actor", String(255)),
    UniqueConstraint("kind", "name", "version", "action", name="uq_feature_definition_versions"),
)

# -- pipelines (migration 0008) ------------------------------------------------------

# A deployment's retraining plan (``pipelines.RetrainPlan`` as JSON) and when its
# triggers were last checked (the start of the next cron look-back).
retrain_plans = Table(
    "retrain_plans",
    metadata,
    Column("deployment", String(255), primary_key=True),
    Column("plan", Text, nullable=False),
    Column("checked_at", Float),
    Column("updated_at", Float, nullable=False),
)

# One row per retraining attempt: what started it, how far it got, what it produced.
retrains = Table(
    "retrains",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(255), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("status", String(32), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("holder", String(255), nullable=False),
    Column("champion", Integer),
    Column("run_id", String(32)),
    Column("version", Integer),
    Column("gate", Text),  # JSON: the gate's verdict and checks
    Column("error", Text),
    Index("ix_retrains_deployment_started", "deployment", "started_at"),
)

# Named leases, one row per name while held, until ``expires_at``: who may retrain a
# deployment now (named after it), and which process leads the runner's periodic
# decisions (``runner:serve``, ``runner:retrain-check``). ``generation`` grows with each
# takeover of the row: the fencing token a holder's writes are checked against.
retrain_leases = Table(
    "retrain_leases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("generation", Integer, nullable=False, server_default="1"),
)

# A pipeline step's stored output, by the step's cache key.
pipeline_cache = Table(
    "pipeline_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("step", String(255), nullable=False),
    Column("artifact_digest", String(64), nullable=False),
    Column("output_digest", String(64), nullable=False),
    Column("run_id", String(32)),
    Column("created_at", Float, nullable=False),
)
