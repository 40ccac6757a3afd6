"""The public API changes only on purpose."""

import inspect

import modelyard
import modelyard.errors


def test_top_level_names() -> None:
    assert sorted(modelyard.__all__) == sorted(
        [
            *modelyard.errors.__all__,
            "LoadedModel",
            "Predictor",
            "Settings",
            "Signature",
            "Yard",
            "__version__",
            "load_model",
            "load_settings",
        ]
    )
    for name in modelyard.__all__:
        assert getattr(modelyard, name) is not None


def test_the_whole_exception_tree_is_exported_at_the_top() -> None:
    classes = [
        value
        for value in vars(modelyard.errors).values()
        if inspect.isclass(value) and issubclass(value, modelyard.ModelyardError)
    ]
    assert len(classes) == 34
    assert sorted(c.__name__ for c in classes) == sorted(modelyard.errors.__all__)
    for error in classes:
        assert getattr(modelyard, error.__name__) is error
    assert modelyard.IntegrityError.code == "artifact_integrity"
