"""The load generator's pure parts: latency buckets and percentiles, the loopback rule,
URL and plan checks, request encoding, response heads, and the cost of predictions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ValidationError
from modelyard.loadtest.generator import (
    BUCKETS,
    MAX_DURATION_S,
    MAX_TRACKABLE_US,
    LatencyHistogram,
    LoadPlan,
    ResponseError,
    Target,
    bucket_ceiling,
    bucket_of,
    check_loopback,
    cost_per_1000,
    encode_request,
    header_value,
    parse_head,
)


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


# -- buckets and percentiles -------------------------------------------------------------


def test_buckets_are_exact_below_1024_us() -> None:
    for us in range(1024):
        assert bucket_ceiling(bucket_of(us)) == us


@given(st.integers(min_value=1024, max_value=MAX_TRACKABLE_US))
def test_a_bucket_holds_its_value_within_0_2_percent(us: int) -> None:
    index = bucket_of(us)
    assert 0 <= index < BUCKETS
    assert bucket_ceiling(index - 1) < us <= bucket_ceiling(index)
    assert bucket_ceiling(index) - us <= us / 512


def test_latencies_beyond_the_range_land_in_the_last_bucket() -> None:
    assert bucket_of(MAX_TRACKABLE_US * 10) == BUCKETS - 1
    assert bucket_of(-5) == 0


def test_percentiles_of_a_known_distribution() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 1001):  # 1 ms .. 1 s, one each
        histogram.record(ms / 1000)
    summary = histogram.summary()
    assert summary.count == 1000
    assert summary.p50_s == pytest.approx(0.500, rel=2e-3)
    assert summary.p90_s == pytest.approx(0.900, rel=2e-3)
    assert summary.p99_s == pytest.approx(0.990, rel=2e-3)
    assert summary.max_s == pytest.approx(1.0)
    assert summary.mean_s == pytest.approx(0.5005, rel=1e-3)


@given(
    st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=300),
    st.floats(min_value=0, max_value=100),
)
def test_a_percentile_never_understates_and_overstates_by_at_most_a_bucket(
    values: list[int], q: float
) -> None:
    histogram = LatencyHistogram()
    for us in values:
        histogram.record(us / 1e6 + 1e-9)  # +1 ns: float seconds must not round down a us
    exact = nearest_rank(values, q)
    got_us = round(histogram.percentile(q) * 1e6)
    assert exact <= got_us <= exact + exact / 512 + 1
    assert got_us <= max(values)


def test_an_empty_histogram_has_no_percentiles() -> None:
    summary = LatencyHistogram().summary()
    assert summary.count == 0
    assert math.isnan(summary.p99_s)


def test_a_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValidationError, match="between 0 and 100, got 101"):
        LatencyHistogram().percentile(101)


def test_merging_histograms_adds_their_counts() -> None:
    first, second = LatencyHistogram(), LatencyHistogram()
    for _ in range(99):
        first.record(0.001)
    second.record(0.250)
    first.merge(second)
    assert first.count == 100
    assert first.percentile(99) == pytest.approx(0.001)
    assert first.percentile(100) == pytest.approx(0.250)


# -- cost --------------------------------------------------------------------------------


def test_cost_per_1000_predictions() -> None:
    # $0.10 an hour at 10,000 predictions/s: 36M predictions an hour.
    assert cost_per_1000(10_000, 0.10) == pytest.approx(0.10 / 36_000_000 * 1000)
    assert cost_per_1000(1, 3.6) == pytest.approx(1.0)
    assert cost_per_1000(500, 0.0) == 0.0


def test_cost_without_throughput_is_infinite() -> None:
    assert math.isinf(cost_per_1000(0, 0.10))


def test_a_negative_price_is_refused() -> None:
    with pytest.raises(ValidationError, match="price must be >= 0 per hour, got -1"):
        cost_per_1000(100, -1)


# -- loopback only -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.10.20.30", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"],
)
def test_loopback_hosts_are_accepted(host: str) -> None:
    check_loopback(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "192.168.1.20", "0.0.0.0", "::", "example.com", "8.8.8.8", "128.0.0.1"]
)
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValidationError, match=r"only generated against this machine .*got host"):
        check_loopback(host)


def test_a_url_to_another_machine_is_refused() -> None:
    with pytest.raises(ValidationError, match="got host 'api.example.com'"):
        Target.from_url("http://api.example.com:8000")


def test_target_from_url() -> None:
    assert Target.from_url("http://127.0.0.1:8000") == Target("127.0.0.1", 8000, "")
    assert Target.from_url("localhost:9000/prefix/") == Target("localhost", 9000, "/prefix")
    assert Target.from_url("http://[::1]:8080").url == "http://[::1]:8080"
    assert Target.from_url("http://127.0.0.1").port == 80


def test_https_is_refused() -> None:
    with pytest.raises(ValidationError, match="must start with http://, got 'https://127.0.0.1'"):
        Target.from_url("https://127.0.0.1")


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="port is not a number"):
        Target.from_url("http://127.0.0.1:99999")


# -- plans -------------------------------------------------------------------------------


def plan(**changes: object) -> LoadPlan:
    base: dict[str, object] = {"url": "http://127.0.0.1:8000", "path": "/x", "body": b"{}"}
    return LoadPlan(**{**base, **changes})  # type: ignore[arg-type]


def test_a_valid_plan_gives_its_target() -> None:
    assert plan().check() == Target("127.0.0.1", 8000, "")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"duration_s": MAX_DURATION_S + 1}, "duration must be more than 0 and at most 120 s"),
        ({"duration_s": 0}, "duration must be more than 0"),
        ({"duration_s": None, "requests": None}, "give a duration or a number of requests"),
        ({"requests": 0}, "requests must be between 1 and"),
        ({"connections": 0}, "connections must be between 1 and 1024, got 0"),
        ({"rate": -5.0}, "rate must be more than 0"),
        ({"warmup_s": 500.0}, "warm-up must be between 0 and 120 s"),
        ({"url": "http://10.1.2.3:8000"}, "got host '10.1.2.3'"),
    ],
)
def test_plans_out_of_bounds_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(**changes).check()


def test_a_request_count_plan_is_still_bounded_in_time() -> None:
    bounded = plan(duration_s=None, requests=1000)
    bounded.check()
    assert bounded.measure_s == MAX_DURATION_S


# -- HTTP/1.1 ----------------------------------------------------------------------------


def test_encode_request() -> None:
    raw = encode_request(
        Target("127.0.0.1", 8000, "/api"), "/v2/models/m/infer", b'{"a":1}', headers={"X-A": "1"}
    )
    head, body = raw.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v2/models/m/infer HTTP/1.1"
    assert "Host: 127.0.0.1:8000" in lines
    assert "Content-Length: 7" in lines
    assert "Content-Type: application/json" in lines
    assert "X-A: 1" in lines
    assert body == b'{"a":1}'


def test_a_given_content_type_is_not_doubled() -> None:
    raw = encode_request(Target("::1", 80), "/", b"x", headers={"content-type": "text/plain"})
    assert raw.count(b"ontent-") == 2  # Content-Length and the given content-type
    assert b"Host: [::1]:80" in raw


def test_parse_head_with_content_length() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\ncontent-type: a\r\nContent-Length: 42\r\n\r\n")
    assert (head.status, head.length, head.keep_alive) == (200, 42, True)


def test_parse_head_chunked_and_closing() -> None:
    head = parse_head(
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert (head.status, head.length, head.keep_alive) == (503, None, False)


def test_parse_head_of_a_response_without_body() -> None:
    assert parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").length == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x response"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", "neither Content-Length nor chunked"),
    ],
)
def test_unreadable_heads_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(ResponseError, match=message):
        parse_head(raw)


def test_variants_are_sent_in_turn_across_connections() -> None:
    from modelyard.loadtest.generator import _Run

    variants = (("/v2/models/a/infer", b"1"), ("/v2/models/b/infer", b"22"))
    run = _Run(plan(variants=variants), Target("127.0.0.1", 8000))
    sent = [run.next_request() for _ in range(4)]
    assert sent[0] == sent[2] != sent[1] == sent[3]
    assert sent[0].startswith(b"POST /v2/models/a/infer HTTP/1.1")
    assert sent[1].endswith(b"\r\n\r\n22")


def test_header_value_is_found_in_any_case() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Request-Id: abc-1\r\nx-model-version: 2\r\n\r\n"
    assert header_value(head, "x-request-id") == "abc-1"
    assert header_value(head, "X-Model-Version") == "2"
    assert header_value(head, "retry-after") is None


def test_kept_answers_carry_status_service_time_and_header() -> None:
    from modelyard.loadtest.generator import _Run

    run = _Run(plan(keep_header="x-request-id"), Target("127.0.0.1", 8000))
    run.measuring = True
    ok = parse_head(b"HTTP/1.1 200 OK\r\nx-request-id: r1\r\nContent-Length: 0\r\n\r\n")
    shed = parse_head(b"HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\n")
    run.done(ok, 0.5, 0.25, 1.0)
    run.done(shed, 0.5, 0.125, 2.0)
    assert [(r.status, r.service_s, r.header) for r in run.responses] == [
        (200, 0.25, "r1"),
        (503, 0.125, None),
    ]
    assert _Run(plan(), Target("127.0.0.1", 8000)).responses == []
