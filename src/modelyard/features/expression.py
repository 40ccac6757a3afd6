"""The expression language of on-demand features, checked when defined and run over columns.

An expression is Python syntax, parsed with ``ast`` and never handed to ``eval`` or
``compile``: only the nodes listed here are accepted, and each becomes a closure over
numpy, built once, that computes a whole column per operation.

* **names**: ``amount`` is a column of that name (a request field, or a feature fetched
  alongside); ``card_stats.amount_mean_1d`` is that view's feature (input
  ``card_stats:amount_mean_1d``).
* **constants**: numbers, strings, ``True``/``False``.
* **operators**: ``+ - * / // % **``, unary ``-``/``+``, comparisons (chains too),
  ``and``/``or``/``not``, ``a if cond else b``.
* **functions**: see ``FUNCTIONS`` (``abs``, ``log``, ``exp``, ``sqrt``, ``min``, ``max``,
  ``coalesce``, ``is_null``, ``hour_of_day``, ``day_of_week``, ...).

Semantics, the same for one request and a million training rows: numbers are float64
(integer columns too, so ``7 // 2`` is ``3.0`` and nothing overflows); null is NaN for
numbers and None for strings; an operation on a null gives null, and so does one with
no finite answer (``x / 0``, ``log(0)``, ``sqrt(-1)``); a null compares unequal to
everything and is false in ``and``/``or``/``not``/``if``; times (a timestamp column or
epoch seconds) are epoch seconds, UTC.

Why hand-written: the libraries that evaluate expression text either run Python's
compiler over it or evaluate row by row. ``numexpr.evaluate`` compiles the text with
Python's ``compile``/``eval`` behind a filter that was bypassed (numexpr#442, replaced by
an AST allow-list only in numexpr#564), has no strings, datetimes or user functions
(no ``hour_of_day``) and is a compiled dependency; ``pandas.eval`` uses numexpr or plain
Python underneath and needs pandas, optional here; ``simpleeval`` and ``asteval``
interpret one row at a time (microseconds per node per row, seconds for a training
set), and asteval accepts most of Python. The subset needed here is a short allow-list
over ``ast`` with numpy doing the arithmetic.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelyard.errors import ValidationError
from modelyard.features.definitions import check_name

Column = NDArray[Any]
Kind = Literal["number", "bool", "any"]  # what an expression certainly gives ("any": unknown)
Program = Callable[[Mapping[str, Column]], Any]

MAX_CHARS = 1000
MAX_NODES = 200


def _finite(values: Any) -> Any:
    """Non-finite numbers become null: a division by zero or ``log(0)`` has no value."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def _arithmetic(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """``fn(a, b)``, null where either is null (IEEE has ``nan ** 0 == 1``) or the result
    is not finite."""
    out = _finite(fn(a, b))
    return np.where(np.isnan(a) | np.isnan(b), np.nan, out)


def _numeric(values: Any) -> Any:
    array = np.asarray(values)
    if array.dtype.kind == "O":
        raise TypeError("a number was needed, got strings")
    return array.astype(np.float64, copy=False)


def truth(values: Any) -> Any:
    """Elementwise truth: non-zero numbers and non-empty strings; null is false."""
    array = np.asarray(values)
    if array.dtype.kind == "b":
        return array
    if array.dtype.kind == "O":
        return np.array([bool(v) for v in array.ravel()], dtype=bool).reshape(array.shape)
    array = array.astype(np.float64, copy=False)
    return (array != 0) & ~np.isnan(array)


def is_null(values: Any) -> Any:
    array = np.asarray(values)
    if array.dtype.kind == "O":
        return np.array([_is_missing(v) for v in array.ravel()], dtype=bool).reshape(array.shape)
    if array.dtype.kind == "f":
        return np.isnan(array)
    return np.zeros(array.shape, dtype=bool)


def _coalesce(*values: Any) -> Any:
    out = values[-1]
    for value in reversed(values[:-1]):
        out = np.where(is_null(value), out, value)
    return out


def _hour_of_day(t: Any) -> Any:
    return np.mod(np.floor(_numeric(t) / 3600.0), 24.0)


def _day_of_week(t: Any) -> Any:
    # 1970-01-01 was a Thursday: Monday is 0, as datetime.weekday() and pandas count.
    return np.mod(np.floor(_numeric(t) / 86400.0) + 3.0, 7.0)


def _minute_of_hour(t: Any) -> Any:
    return np.mod(np.floor(_numeric(t) / 60.0), 60.0)


def _math(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: _finite(fn(_numeric(x)))


def _extreme(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def apply(*values: Any) -> Any:
        out = _numeric(values[0])
        for value in values[1:]:
            out = fn(out, _numeric(value))  # np.minimum/np.maximum: a null gives null
        return out

    return apply


@dataclass(frozen=True)
class _Function:
    fn: Callable[..., Any]
    arity: tuple[int, int | None]  # at least, at most (None: any number)
    kind: Kind


FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(_math(np.abs), (1, 1), "number"),
    "log": _Function(_math(np.log), (1, 1), "number"),
    "log1p": _Function(_math(np.log1p), (1, 1), "number"),
    "exp": _Function(_math(np.exp), (1, 1), "number"),
    "sqrt": _Function(_math(np.sqrt), (1, 1), "number"),
    "floor": _Function(_math(np.floor), (1, 1), "number"),
    "ceil": _Function(_math(np.ceil), (1, 1), "number"),
    "round": _Function(_math(np.round), (1, 1), "number"),
    "min": _Function(_extreme(np.minimum), (2, None), "number"),
    "max": _Function(_extreme(np.maximum), (2, None), "number"),
    "coalesce": _Function(_coalesce, (2, None), "any"),
    "is_null": _Function(is_null, (1, 1), "bool"),
    "hour_of_day": _Function(_hour_of_day, (1, 1), "number"),
    "day_of_week": _Function(_day_of_week, (1, 1), "number"),
    "minute_of_hour": _Function(_minute_of_hour, (1, 1), "number"),
}

_ARITHMETIC: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.FloorDiv: ("//", np.floor_divide),
    ast.Mod: ("%", np.mod),
    ast.Pow: ("**", np.power),
}
_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ALLOWED = (
    "names, view.feature, numbers, strings, True/False, + - * / // % **, comparisons, "
    "and/or/not, 'a if cond else b', and the functions " + ", ".join(sorted(FUNCTIONS))
)


@dataclass(frozen=True)
class Expression:
    """A checked expression: what it reads, what it certainly gives, and how to run it."""

    text: str
    inputs: tuple[str, ...]  # column names it reads: ``amount``, ``card_stats:amount_mean_1d``
    kind: Kind
    program: Program

    def run(self, columns: Mapping[str, Column]) -> Any:
        """The values over ``columns`` (prepared by ``column``): an array, or a scalar when
        the expression reads nothing. Raises ``TypeError`` when the data's types do not fit
        (a string divided by a number)."""
        with np.errstate(all="ignore"):
            return self.program(columns)


def parse_expression(text: object, what: str) -> Expression:
    """Check ``text`` against the language; a ``ValidationError`` names ``what`` and the
    first thing not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"{what}: the expression must be non-empty text, got {text!r}")
    if len(text) > MAX_CHARS:
        raise ValidationError(f"{what}: the expression is longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        reason = getattr(error, "msg", None) or str(error) or type(error).__name__
        raise ValidationError(f"{what}: cannot parse {text!r}: {reason}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ValidationError(f"{what}: the expression has {nodes} parts, at most {MAX_NODES}")
    compiler = _Compiler(what)
    program, kind = compiler.compile(tree.body)
    return Expression(text, tuple(dict.fromkeys(compiler.inputs)), kind, program)


class _Compiler:
    """Turns an allowed ``ast`` node into a closure; refuses every other node."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.inputs: list[str] = []

    def refuse(self, node: ast.AST, detail: str) -> ValidationError:
        part = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
        return ValidationError(f"{self.what}: {detail} in {part!r}; allowed: {_ALLOWED}")

    def compile(self, node: ast.expr) -> tuple[Program, Kind]:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.column(self.name("column", node.id))
        if isinstance(node, ast.Attribute):
            if not isinstance(node.value, ast.Name):
                raise self.refuse(node, "only view.feature may use a dot")
            view = self.name("feature view", node.value.id)
            return self.column(f"{view}:{self.name('feature', node.attr)}")
        if isinstance(node, ast.BinOp):
            return self.arithmetic(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.Compare):
            return self.comparison(node)
        if isinstance(node, ast.BoolOp):
            return self.logical(node)
        if isinstance(node, ast.IfExp):
            return self.conditional(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.refuse(node, f"{type(node).__name__} is not allowed")

    def constant(self, node: ast.Constant) -> tuple[Program, Kind]:
        value = node.value
        if isinstance(value, bool):
            flag = np.bool_(value)
            return (lambda _c: flag), "bool"
        if isinstance(value, int | float):
            try:
                number = np.float64(value)
            except OverflowError:
                number = np.float64(np.inf)
            if not np.isfinite(number):
                raise self.refuse(node, "a number too large")
            return (lambda _c: number), "number"
        if isinstance(value, str):
            # a one-element object array, so that it broadcasts against string columns
            text = np.array([value], dtype=object)
            return (lambda _c: text), "any"
        raise self.refuse(node, f"a constant of type {type(value).__name__} is not allowed")

    def name(self, kind: str, text: str) -> str:
        try:
            return check_name(kind, text)
        except ValidationError as error:
            raise ValidationError(f"{self.what}: {error.message}") from None

    def column(self, name: str) -> tuple[Program, Kind]:
        self.inputs.append(name)
        return (lambda columns: columns[name]), "any"

    def arithmetic(self, node: ast.BinOp) -> tuple[Program, Kind]:
        found = _ARITHMETIC.get(type(node.op))
        if found is None:
            raise self.refuse(node, f"operator {type(node.op).__name__} is not allowed")
        symbol, fn = found
        left, _ = self.compile(node.left)
        right, _ = self.compile(node.right)
        if symbol == "+":  # + also joins strings

            def add(columns: Mapping[str, Column]) -> Any:
                a, b = np.asarray(left(columns)), np.asarray(right(columns))
                if a.dtype.kind == "O" or b.dtype.kind == "O":
                    return _joined(a, b)
                return _finite(np.add(_numeric(a), _numeric(b)))

            return add, "any"
        return (lambda c: _arithmetic(fn, _numeric(left(c)), _numeric(right(c)))), "number"

    def unary(self, node: ast.UnaryOp) -> tuple[Program, Kind]:
        operand, _ = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return (lambda c: np.logical_not(truth(operand(c)))), "bool"
        if isinstance(node.op, ast.USub):
            return (lambda c: np.negative(_numeric(operand(c)))), "number"
        if isinstance(node.op, ast.UAdd):
            return (lambda c: _numeric(operand(c))), "number"
        raise self.refuse(node, f"operator {type(node.op).__name__} is not allowed")

    def comparison(self, node: ast.Compare) -> tuple[Program, Kind]:
        tests: list[Callable[[Any, Any], Any]] = []
        for op in node.ops:
            fn = _COMPARISONS.get(type(op))
            if fn is None:
                raise self.refuse(node, f"comparison {type(op).__name__} is not allowed")
            tests.append(fn)
        operands = [self.compile(node.left)[0]] + [self.compile(c)[0] for c in node.comparators]

        def compare(columns: Mapping[str, Column]) -> Any:
            values = [operand(columns) for operand in operands]
            out: Any = True
            for test, a, b in zip(tests, values, values[1:], strict=False):
                out = np.logical_and(out, _compared(test, a, b))
            return out

        return compare, "bool"

    def logical(self, node: ast.BoolOp) -> tuple[Program, Kind]:
        parts = [self.compile(value)[0] for value in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def logical(columns: Mapping[str, Column]) -> Any:
            out = truth(parts[0](columns))
            for part in parts[1:]:
                out = combine(out, truth(part(columns)))
            return out

        return logical, "bool"

    def conditional(self, node: ast.IfExp) -> tuple[Program, Kind]:
        test, _ = self.compile(node.test)
        body, body_kind = self.compile(node.body)
        orelse, else_kind = self.compile(node.orelse)
        kind: Kind = body_kind if body_kind == else_kind else "any"
        return (lambda c: _choose(truth(test(c)), body(c), orelse(c))), kind

    def call(self, node: ast.Call) -> tuple[Program, Kind]:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node, "only the listed functions may be called")
        function = FUNCTIONS.get(node.func.id)
        if function is None:
            raise self.refuse(node, f"unknown function {node.func.id!r}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse(node, f"{node.func.id}() takes plain arguments only")
        least, most = function.arity
        if len(node.args) < least or (most is not None and len(node.args) > most):
            wanted = str(least) if least == most else f"at least {least}"
            raise self.refuse(
                node, f"{node.func.id}() takes {wanted} argument(s), got {len(node.args)}"
            )
        args = [self.compile(a)[0] for a in node.args]
        fn = function.fn
        return (lambda c: fn(*(arg(c) for arg in args))), function.kind


def _compared(test: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    left, right = np.asarray(a), np.asarray(b)
    if left.dtype.kind != "O" and right.dtype.kind != "O":
        return test(left.astype(np.float64, copy=False), right.astype(np.float64, copy=False))
    if test in (operator.eq, operator.ne):  # elementwise; a string never equals a number
        return np.asarray(test(left, right), dtype=bool)
    # An order with a null is false, as with NaN; the others are compared as Python does.
    left, right = np.broadcast_arrays(left, right)
    keep = ~(is_null(left) | is_null(right))
    out = np.zeros(left.shape, dtype=bool)
    out[keep] = np.asarray(test(left[keep], right[keep]), dtype=bool)
    return out


def _joined(a: Column, b: Column) -> Column:
    """``a + b`` where one side holds strings: joined, null where either is null."""
    a, b = np.broadcast_arrays(a.astype(object), b.astype(object))
    keep = ~(is_null(a) | is_null(b))
    out = np.full(a.shape, None, dtype=object)
    out[keep] = a[keep] + b[keep]
    return out


def _choose(condition: Any, body: Any, orelse: Any) -> Any:
    a, b = np.asarray(body), np.asarray(orelse)
    if (a.dtype.kind == "O") != (b.dtype.kind == "O"):  # a string or a number: nulls are None
        a, b = _nulls_as_none(a), _nulls_as_none(b)
    return np.where(condition, a, b)


def _nulls_as_none(values: Column) -> Column:
    out = values.astype(object)
    out[is_null(values)] = None
    return out


# -- inputs ---------------------------------------------------------------------------


def column(values: object, name: str) -> Column:
    """One input as the language sees it: numbers as float64 (NaN for null), booleans,
    strings as objects (None for null), timestamps as epoch seconds (naive is UTC)."""
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValidationError(f"column {name!r} must be one-dimensional, got shape {array.shape}")
    kind = array.dtype.kind
    if kind == "b":
        return array
    if kind in "iuf":
        return array.astype(np.float64, copy=False)
    if kind == "M":
        nat = np.isnat(array)
        seconds = array.astype("datetime64[us]").astype(np.int64) / 1e6
        return np.where(nat, np.nan, seconds)
    if kind == "m":
        nat = np.isnat(array)
        return np.where(nat, np.nan, array.astype("timedelta64[us]").astype(np.int64) / 1e6)
    if kind in "US":
        return array.astype(object)
    if kind == "O":
        return _objects(array, name)
    raise ValidationError(f"column {name!r} has dtype {array.dtype}, which expressions cannot read")


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' NA and NaT


def _objects(array: Column, name: str) -> Column:
    values = [None if _is_missing(v) else v for v in array]
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, datetime) for v in present):
        return np.array([np.nan if v is None else _epoch(v) for v in values], dtype=np.float64)
    if present and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        for v in present
    ):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if all(isinstance(v, str | bool | np.bool_) for v in present):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    kinds = sorted({type(v).__name__ for v in present})
    raise ValidationError(f"column {name!r} mixes values of types {kinds}")


def _epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def broadcast(values: Any, rows: int) -> Column:
    """The result as one value per row (an expression of constants gives one value)."""
    array = np.asarray(values)
    if array.ndim == 0 or array.shape == (1,) and rows != 1:
        return np.full(rows, array.reshape(-1)[0], dtype=array.dtype)
    return array


def names_in(columns: Sequence[str]) -> str:
    return ", ".join(sorted(columns)) or "(none)"
