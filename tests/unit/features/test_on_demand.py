"""On-demand features: the expression language is checked when defined, evaluated over
whole columns exactly as a row-by-row Python reading of it would, and refuses the rest."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.errors import ValidationError
from modelyard.features.definitions import FeatureRef
from modelyard.features.on_demand import ON_DEMAND, OnDemandFeature

# -- what the brief asks for ----------------------------------------------------------


def test_a_ratio_of_a_request_field_to_a_feature() -> None:
    ratio = OnDemandFeature("amount_ratio", "amount / (amount_mean_1d + 1)")
    assert ratio.inputs == ("amount", "amount_mean_1d")
    values = ratio.evaluate({"amount": [10, 3, 5], "amount_mean_1d": [4.0, 0.0, None]})
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [2.0, 3.0, np.nan])


def test_hour_of_day_of_a_timestamp_column() -> None:
    hour = OnDemandFeature("hour", "hour_of_day(event_time)", "int64")
    times = np.array(["2024-03-01T13:59:59", "2024-03-02T00:00:00"], dtype="datetime64[s]")
    values = hour.evaluate({"event_time": times})
    assert values.dtype == np.int64
    assert values.tolist() == [13, 0]


def test_a_view_feature_is_named_view_dot_feature_and_read_as_view_colon_feature() -> None:
    ratio = OnDemandFeature("ratio", "amount / card_stats.amount_mean_1d")
    assert ratio.inputs == ("amount", "card_stats:amount_mean_1d")
    assert ratio.view_features == (FeatureRef("card_stats", "amount_mean_1d"),)
    assert ratio.ref == FeatureRef(ON_DEMAND, "ratio")
    values = ratio.evaluate({"amount": [6.0], "card_stats:amount_mean_1d": [3.0]})
    assert values.tolist() == [2.0]


# -- semantics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "dtype", "expected"),
    [
        ("x / 0", "float64", [np.nan, np.nan]),
        ("log(x - 1)", "float64", [np.nan, 0.0]),
        ("sqrt(x - 2)", "float64", [np.nan, 0.0]),
        ("7 // 2 + x % 2", "int64", [4, 3]),
        ("2 ** x", "float64", [2.0, 4.0]),
        ("min(x, 1.5, 3)", "float64", [1.0, 1.5]),
        ("max(x, 1.5)", "float64", [1.5, 2.0]),
        ("abs(1 - x * 3)", "float64", [2.0, 5.0]),
        ("x if x > 1 else -x", "float64", [-1.0, 2.0]),
        ("x > 1 and not x > 5 or x == 0", "bool", [False, True]),
        ("1 < x <= 2", "bool", [False, True]),
        ("x", "float32", [1.0, 2.0]),
        ("x * 2", "string", None),
    ],
)
def test_operators_and_functions(expression: str, dtype: Any, expected: list[Any] | None) -> None:
    if expected is None:
        with pytest.raises(ValidationError, match="declared string but 'x \\* 2' gives a number"):
            OnDemandFeature("f", expression, dtype)
        return
    values = OnDemandFeature("f", expression, dtype).evaluate({"x": np.array([1, 2])})
    np.testing.assert_array_equal(values, expected)
    assert values.dtype == np.dtype({"string": object}.get(dtype, dtype))


def test_nulls_propagate_and_coalesce_replaces_them() -> None:
    columns = {"x": [1.0, None, np.nan], "y": [1.0, 2.0, 3.0]}
    np.testing.assert_array_equal(
        OnDemandFeature("a", "x + y").evaluate(columns), [2.0, np.nan, np.nan]
    )
    np.testing.assert_array_equal(
        OnDemandFeature("b", "coalesce(x, y, 0)").evaluate(columns), [1.0, 2.0, 3.0]
    )
    assert OnDemandFeature("c", "is_null(x)", "bool").evaluate(columns).tolist() == [
        False,
        True,
        True,
    ]
    # a null compares false, and so is false in a condition
    assert OnDemandFeature("d", "x > 0", "bool").evaluate(columns).tolist() == [True, False, False]
    np.testing.assert_array_equal(
        OnDemandFeature("e", "1 if x else 2").evaluate(columns), [1.0, 2.0, 2.0]
    )


def test_an_int_result_with_a_null_comes_back_as_float_and_bools_as_objects() -> None:
    as_int = OnDemandFeature("n", "x * 2", "int64").evaluate({"x": [1.5, None]})
    assert as_int.dtype == np.float64
    np.testing.assert_array_equal(as_int, [3.0, np.nan])
    as_bool = OnDemandFeature("b", "x", "bool").evaluate({"x": [0.0, None, 2.0]})
    assert as_bool.tolist() == [False, None, True]


def test_strings_compare_and_join_with_nulls_as_none() -> None:
    columns = {"merchant": ["shop", None, "bank"], "country": ["fr", "de", None]}
    joined = OnDemandFeature("key", "merchant + '/' + country", "string").evaluate(columns)
    assert joined.tolist() == ["shop/fr", None, None]
    is_shop = OnDemandFeature("shop", "merchant == 'shop'", "bool").evaluate(columns)
    assert is_shop.tolist() == [True, False, False]
    before = OnDemandFeature("early", "merchant < 'c'", "bool").evaluate(columns)
    assert before.tolist() == [False, False, True]
    label = OnDemandFeature("label", "merchant if country == 'fr' else 'other'", "string")
    assert label.evaluate(columns).tolist() == ["shop", "other", "other"]


def test_time_inputs_of_every_kind_are_utc_epoch_seconds() -> None:
    t = datetime(2024, 3, 4, 22, 30, tzinfo=UTC)  # a Monday
    hour = OnDemandFeature("hour", "hour_of_day(t)", "int64")
    weekday = OnDemandFeature("weekday", "day_of_week(t)", "int64")
    minute = OnDemandFeature("minute", "minute_of_hour(t)", "int64")
    forms: list[Any] = [
        [t.timestamp()],
        [t],
        [t.replace(tzinfo=None)],  # naive is UTC
        [t.astimezone(timezone(timedelta(hours=5)))],
        np.array([t.replace(tzinfo=None)], dtype="datetime64[ns]"),
    ]
    for form in forms:
        assert hour.evaluate({"t": form}).tolist() == [22], form
        assert weekday.evaluate({"t": form}).tolist() == [0], form
        assert minute.evaluate({"t": form}).tolist() == [30], form
    gap = OnDemandFeature("gap", "now - then").evaluate(
        {"now": [t], "then": np.array([t.replace(tzinfo=None) - timedelta(hours=1)], "M8[s]")}
    )
    assert gap.tolist() == [3600.0]


def test_pandas_columns_with_missing_values() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "t": pd.to_datetime(["2024-01-01 05:00", None, "2024-01-01 07:00"], utc=True),
        }
    )
    values = OnDemandFeature("f", "n + hour_of_day(t)").evaluate(frame)
    np.testing.assert_array_equal(values, [6.0, np.nan, 10.0])


def test_constants_only_need_the_number_of_rows() -> None:
    assert OnDemandFeature("k", "2 * 3").evaluate({}, rows=3).tolist() == [6.0, 6.0, 6.0]
    with pytest.raises(ValidationError, match="reads no column: say how many rows"):
        OnDemandFeature("k", "2 * 3").evaluate({})


def test_round_trip_through_its_dict_and_digest() -> None:
    feature = OnDemandFeature("ratio", "amount / (amount_mean_1d + 1)", "float32", "ratio")
    again = OnDemandFeature.from_dict(feature.to_dict())
    assert again == feature
    assert again.digest == feature.digest
    assert OnDemandFeature("ratio", "amount / (amount_mean_1d + 2)").digest != feature.digest


# -- refused when defined -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("__import__('os').system('x')", "only the listed functions may be called"),
        ("open('x')", "unknown function 'open'"),
        ("exec('1')", "unknown function 'exec'"),
        ("x.y.z", "only view.feature may use a dot"),
        ("x.upper()", "only the listed functions may be called"),
        ("x[0]", "Subscript is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("[a for a in x]", "ListComp is not allowed"),
        ("f'{x}'", "JoinedStr is not allowed"),
        ("(y := 1)", "NamedExpr is not allowed"),
        ("x & y", "operator BitAnd is not allowed"),
        ("~x", "operator Invert is not allowed"),
        ("x in y", "comparison In is not allowed"),
        ("x is None", "comparison Is is not allowed"),
        ("None", "constant of type NoneType"),
        ("1j", "constant of type complex"),
        ("1e999", "a number too large"),
        ("log(x, 2)", "log\\(\\) takes 1 argument\\(s\\), got 2"),
        ("max(x)", "max\\(\\) takes at least 2 argument\\(s\\), got 1"),
        ("abs(x=1)", "abs\\(\\) takes plain arguments only"),
        ("x +", "cannot parse 'x \\+'"),
        ("", "the expression must be non-empty text"),
        ("x" * 1001, "longer than 1000 characters"),
        ("+".join(["x"] * 150), "parts, at most 200"),
    ],
)
def test_bad_expressions_are_refused_naming_the_feature_and_the_part(
    expression: str, match: str
) -> None:
    with pytest.raises(ValidationError, match=f"on-demand feature 'bad'.*{match}"):
        OnDemandFeature("bad", expression)


def test_bad_names_and_dtypes_are_refused() -> None:
    with pytest.raises(ValidationError, match="on-demand feature name '1x' is not allowed"):
        OnDemandFeature("1x", "a")
    with pytest.raises(ValidationError, match="dtype must be one of int64.*got 'decimal'"):
        OnDemandFeature("f", "a", "decimal")  # type: ignore[arg-type]


# -- refused when evaluated -----------------------------------------------------------


def test_missing_inputs_are_named_with_what_the_request_carries() -> None:
    feature = OnDemandFeature("ratio", "amount / card_stats.amount_mean_1d")
    with pytest.raises(
        ValidationError,
        match="'ratio' reads card_stats:amount_mean_1d, which the request does not carry; "
        "it has amount, other",
    ):
        feature.evaluate({"amount": [1.0], "other": [2.0]})


def test_inputs_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValidationError, match="inputs differ in length"):
        OnDemandFeature("f", "a + b").evaluate({"a": [1, 2], "b": [1]})
    with pytest.raises(ValidationError, match="'f': column 'a' must be one-dimensional"):
        OnDemandFeature("f", "a").evaluate({"a": [[1, 2]]})


def test_data_of_the_wrong_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="'x / 2' cannot be computed.*got strings"):
        OnDemandFeature("f", "x / 2").evaluate({"x": ["a"]})
    with pytest.raises(ValidationError, match="declared float64 but gives strings"):
        OnDemandFeature("f", "x").evaluate({"x": ["a"]})
    with pytest.raises(ValidationError, match="declared string but gives float64"):
        OnDemandFeature("f", "x", "string").evaluate({"x": [1.0]})
    with pytest.raises(ValidationError, match="'f': column 'x' mixes values of types"):
        OnDemandFeature("f", "x").evaluate({"x": np.array(["a", 1.0], dtype=object)})


# -- properties -----------------------------------------------------------------------

NUMBERS = st.sampled_from([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 10.0])
_OPS = [ast.Add(), ast.Sub(), ast.Mult(), ast.Div(), ast.FloorDiv(), ast.Mod(), ast.Pow()]
_CMPS = [ast.Eq(), ast.NotEq(), ast.Lt(), ast.LtE(), ast.Gt(), ast.GtE()]
_FUNCTIONS = {"abs": 1, "sqrt": 1, "floor": 1, "ceil": 1, "min": 2, "max": 3}


def _call(name: str, args: list[ast.expr]) -> ast.expr:
    return ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])


def _branches(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    return st.one_of(
        st.builds(ast.BinOp, children, st.sampled_from(_OPS), children),
        st.builds(ast.UnaryOp, st.sampled_from([ast.USub(), ast.Not()]), children),
        st.builds(
            lambda a, op, b: ast.Compare(a, [op], [b]), children, st.sampled_from(_CMPS), children
        ),
        st.builds(
            lambda op, values: ast.BoolOp(op, values),
            st.sampled_from([ast.And(), ast.Or()]),
            st.lists(children, min_size=2, max_size=3),
        ),
        st.builds(ast.IfExp, children, children, children),
        st.sampled_from(sorted(_FUNCTIONS)).flatmap(
            lambda name: st.lists(
                children, min_size=_FUNCTIONS[name], max_size=_FUNCTIONS[name]
            ).map(lambda args: _call(name, args))
        ),
    )


EXPRESSIONS = st.recursive(
    st.one_of(
        st.sampled_from(["x", "y"]).map(lambda n: ast.Name(n, ast.Load())),
        NUMBERS.map(lambda v: ast.Constant(abs(v))),
    ),
    _branches,
    max_leaves=12,
)


def _reference(node: ast.expr, row: dict[str, float]) -> float:
    """The expression read one row at a time with Python floats and ``math``."""

    def number(value: float | bool) -> float:
        return float(value)

    def finite(fn: Callable[[], Any]) -> float:
        try:
            value = fn()
        except (ZeroDivisionError, OverflowError, ValueError):
            return math.nan
        if isinstance(value, complex) or not math.isfinite(value):
            return math.nan
        return float(value)

    def truth(value: float) -> bool:
        return value == value and value != 0

    def go(n: ast.expr) -> float:
        if isinstance(n, ast.Name):
            return row[n.id]
        if isinstance(n, ast.Constant):
            return float(n.value)
        if isinstance(n, ast.UnaryOp):
            value = go(n.operand)
            return float(not truth(value)) if isinstance(n.op, ast.Not) else -value
        if isinstance(n, ast.BinOp):
            a, b = go(n.left), go(n.right)
            ops: dict[type, Callable[[float, float], float]] = {
                ast.Add: lambda p, q: p + q,
                ast.Sub: lambda p, q: p - q,
                ast.Mult: lambda p, q: p * q,
                ast.Div: lambda p, q: p / q,
                ast.FloorDiv: lambda p, q: p // q,
                ast.Mod: lambda p, q: p % q,
                ast.Pow: lambda p, q: p**q,
            }
            if math.isnan(a) or math.isnan(b):
                return math.nan
            return finite(lambda: ops[type(n.op)](a, b))
        if isinstance(n, ast.Compare):
            a, b = go(n.left), go(n.comparators[0])
            tests: dict[type, Callable[[float, float], bool]] = {
                ast.Eq: lambda p, q: p == q,
                ast.NotEq: lambda p, q: p != q,
                ast.Lt: lambda p, q: p < q,
                ast.LtE: lambda p, q: p <= q,
                ast.Gt: lambda p, q: p > q,
                ast.GtE: lambda p, q: p >= q,
            }
            return number(tests[type(n.ops[0])](a, b))
        if isinstance(n, ast.BoolOp):
            truths = [truth(go(v)) for v in n.values]
            return number(all(truths) if isinstance(n.op, ast.And) else any(truths))
        if isinstance(n, ast.IfExp):
            return go(n.body) if truth(go(n.test)) else go(n.orelse)
        assert isinstance(n, ast.Call)
        assert isinstance(n.func, ast.Name)
        args = [go(a) for a in n.args]
        if any(math.isnan(a) for a in args):
            return math.nan
        functions: dict[str, Callable[..., float]] = {
            "abs": abs,
            "sqrt": math.sqrt,
            "floor": lambda v: float(math.floor(v)),
            "ceil": lambda v: float(math.ceil(v)),
            "min": min,
            "max": max,
        }
        return finite(lambda: functions[n.func.id](*args))  # type: ignore[union-attr]

    return go(node)


@given(
    tree=EXPRESSIONS,
    xs=st.lists(st.one_of(NUMBERS, st.just(math.nan)), min_size=1, max_size=8),
    data=st.data(),
)
def test_columns_give_what_a_row_by_row_reading_gives(
    tree: ast.expr, xs: list[float], data: st.DataObject
) -> None:
    ys = data.draw(st.lists(NUMBERS, min_size=len(xs), max_size=len(xs)))
    text = ast.unparse(tree)
    feature = OnDemandFeature("f", text)
    got = feature.evaluate({"x": xs, "y": ys}, rows=len(xs))
    tree = ast.parse(text, mode="eval").body  # as written, so precedence is the parser's
    expected = [_reference(tree, {"x": x, "y": y}) for x, y in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True, err_msg=text)


@given(st.floats(min_value=-4e9, max_value=4e9, allow_nan=False))
def test_calendar_functions_agree_with_datetime(t: float) -> None:
    moment = datetime.fromtimestamp(math.floor(t), UTC)
    row = {"t": [math.floor(t)]}
    assert OnDemandFeature("h", "hour_of_day(t)", "int64").evaluate(row)[0] == moment.hour
    assert OnDemandFeature("d", "day_of_week(t)", "int64").evaluate(row)[0] == moment.weekday()
    assert OnDemandFeature("m", "minute_of_hour(t)", "int64").evaluate(row)[0] == moment.minute


_TOKENS = st.sampled_from(
    ["x", "y", "1", "2.5", "'s'", "+", "-", "*", "/", "**", "(", ")", ",", ".", "==", "<",
     " and ", " or ", "not ", " if ", " else ", "log", "min", "__class__", "[", "]", ":",
     "lambda", "import", ";", "\n", "'", "\\", "#"]
)  # fmt: skip


def _outcome(text: str) -> str:
    """``ok``, or the message of the ``ValidationError`` defining or evaluating raised."""
    try:
        feature = OnDemandFeature("f", text)
        feature.evaluate({name: np.arange(3.0) for name in feature.inputs}, rows=3)
    except ValidationError as error:
        return error.message
    return "ok"


@given(st.one_of(st.text(max_size=40), st.lists(_TOKENS, max_size=16).map("".join)))
def test_any_text_is_a_feature_or_a_validation_error(text: str) -> None:
    outcome = _outcome(text)
    assert outcome == "ok" or outcome.startswith("on-demand feature 'f'")
