import numpy as np
import pandas as pd
import pytest

from modelyard.errors import ValidationError
from modelyard.tracking import fingerprint


def test_same_data_same_digest_any_container() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    first = fingerprint(frame)
    assert first == fingerprint(frame.copy())
    assert first.rows == 2
    assert first.schema == (("a", "float64"), ("b", "object"))


def test_any_changed_cell_changes_the_digest() -> None:
    data = np.arange(12, dtype=np.float64).reshape(4, 3)
    changed = data.copy()
    changed[2, 1] += 1e-9
    assert fingerprint(data).digest != fingerprint(changed).digest


def test_renaming_a_column_changes_the_digest() -> None:
    assert fingerprint({"a": [1, 2]}).digest != fingerprint({"b": [1, 2]}).digest


def test_ragged_columns_are_refused() -> None:
    with pytest.raises(ValidationError, match="different lengths"):
        fingerprint({"a": [1, 2], "b": [1]})
