import numpy as np
import pytest

from modelyard.errors import MalformedRequestError, ValidationError
from modelyard.serving.wire.classification import classify, requested_count


def test_each_row_gives_its_highest_values_first_with_ties_in_index_order() -> None:
    scores = np.array([[1, 5, 10, 4], [3, 3, 1, 3]], dtype=np.int64)
    assert classify(scores, 2, "out").tolist() == [["10:2", "5:1"], ["3:0", "3:1"]]


def test_float_values_keep_their_own_precision() -> None:
    scores = np.array([[0.1, 0.9]], dtype=np.float32)
    assert classify(scores, 1, "probabilities").tolist() == [["0.9:1"]]


def test_a_version_that_names_its_classes_adds_the_label() -> None:
    scores = np.array([[0.1, 0.9]], dtype=np.float32)
    assert classify(scores, 2, "p", ("cat", "dog")).tolist() == [["0.9:1:dog", "0.1:0:cat"]]
    # labels that are not one per value (the ``label`` output) are not guessed at
    assert classify(np.array([1]), 1, "label", ("cat", "dog")).tolist() == [["1:0"]]


def test_a_one_value_output_is_one_class_a_row() -> None:
    assert classify(np.array([7, 8]), 1, "label").tolist() == [["7:0"], ["8:0"]]


def test_more_classes_than_a_row_holds_or_text_are_refused() -> None:
    with pytest.raises(ValidationError, match="holds 2 value"):
        classify(np.zeros((1, 2)), 3, "out")
    with pytest.raises(ValidationError, match="holds no numbers"):
        classify(np.array([["a", "b"]], dtype=object), 1, "out")


@pytest.mark.parametrize("count", [0, -1, True, 1.5, "2"])
def test_a_count_must_be_a_positive_integer(count: object) -> None:
    with pytest.raises(MalformedRequestError, match="output 'out': parameters.classification"):
        requested_count("out", {"classification": count})
    assert requested_count("out", {}) is None
