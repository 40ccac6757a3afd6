"""Windowed aggregations offline: modelyard's bucketed join against the plain range join
(issue 15: "a range join over (t - window, t], or a better formulation: measure it").

    .venv/bin/python benchmarks/features/bench_windows.py [--scale 1.0] [--entities N]

On the data of ``bench_offline.py`` (generated if missing): the labels and view 0
(10M events over 100k entities at scale 1), six aggregations over 1 h and 24 h
windows, created-time guard on. The range join is the query one writes from the
definition: ``JOIN events ON key = key AND t - 24h < event_time <= t``, grouped by
label row. Both run in this process with the same DuckDB limits; the values are
compared (they must agree to 1e-9).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_offline  # noqa: E402

from modelyard.features import Aggregation, Entity, FeatureView, FileSource  # noqa: E402
from modelyard.features.offline import OfflineOptions, get_training_set  # noqa: E402

AGGREGATIONS = (
    Aggregation("count", "1h"),
    Aggregation("sum", "24h", "f0_a"),
    Aggregation("mean", "24h", "f0_a"),
    Aggregation("max", "1h", "f0_b"),
    Aggregation("distinct", "24h", "f0_b"),
    Aggregation("time_since_last", "24h"),
)
RANGE_JOIN = """
SELECT
  count(*) FILTER (WHERE e.ts > l.t - 3600) AS count_1h,
  coalesce(sum(e.f0_a), 0) AS f0_a_sum_1d,
  avg(e.f0_a) AS f0_a_mean_1d,
  max(e.f0_b) FILTER (WHERE e.ts > l.t - 3600) AS f0_b_max_1h,
  count(DISTINCT e.f0_b) AS f0_b_distinct_1d,
  l.t - max(e.ts) AS time_since_last_1d
FROM (SELECT row_number() OVER () AS row, card_id, epoch_us(event_timestamp) / 1e6 AS t
      FROM labels) l
LEFT JOIN (SELECT card_id, epoch_us(event_timestamp) / 1e6 AS ts,
                  epoch_us(created) / 1e6 AS c, f0_a, f0_b
           FROM read_parquet('{path}')) e
  ON e.card_id = l.card_id AND e.ts > l.t - 86400 AND e.ts <= l.t AND e.c <= l.t
GROUP BY l.row, l.t
ORDER BY l.row
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument(
        "--entities", type=int, help="fold the cards onto this many (more events per entity)"
    )
    args = parser.parse_args()
    data = bench_offline.OUT / f"data-{args.scale:g}"
    bench_offline.generate(data, args.scale)
    labels = pd.read_parquet(data / "labels.parquet")
    events = data / "v0.parquet"
    if args.entities:
        events = data / f"v0-{args.entities}.parquet"
        labels["card_id"] %= args.entities
        if not events.exists():
            duckdb.sql(
                f"COPY (SELECT * REPLACE (card_id % {args.entities} AS card_id) "
                f"FROM read_parquet('{data / 'v0.parquet'}')) TO '{events}' (FORMAT parquet)"
            )
    view = FeatureView(
        "v0",
        Entity("card", "card_id", "int64"),
        FileSource(str(events), "event_timestamp", "created"),
        aggregations=AGGREGATIONS,
    )
    refs = [f"v0:{a.feature_name}" for a in AGGREGATIONS]
    spill = Path(tempfile.mkdtemp(prefix="bench-windows-"))
    options = OfflineOptions(memory_limit=args.memory_limit, threads=2, temp_dir=spill)

    wall, cpu = time.perf_counter(), time.process_time()
    ours = get_training_set(labels, refs, [view], options=options)
    ours_wall, ours_cpu = time.perf_counter() - wall, time.process_time() - cpu

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    con.execute("SET threads = 2")
    con.execute(f"SET temp_directory = '{spill}'")
    con.register("labels", labels)
    wall, cpu = time.perf_counter(), time.process_time()
    theirs = con.sql(RANGE_JOIN.format(path=events)).df()
    range_wall, range_cpu = time.perf_counter() - wall, time.process_time() - cpu

    names = [a.feature_name for a in AGGREGATIONS]
    a = ours[names].astype("float64").to_numpy()
    b = theirs[names].astype("float64").to_numpy()
    agree = bool(np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True))
    print("| formulation | wall | CPU |\n|---|---|---|")
    print(f"| modelyard (bucketed hash join) | {ours_wall:.2f} s | {ours_cpu:.2f} s |")
    print(f"| range join | {range_wall:.2f} s | {range_cpu:.2f} s |")
    entities = labels["card_id"].nunique()
    print(
        f"{len(labels):,} labels, {entities:,} entities; values agree: {agree}; "
        f"range join / modelyard: {range_wall / ours_wall:.1f}x; peak RSS of the process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
