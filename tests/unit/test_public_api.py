"""The public API changes only on purpose."""

import modelyard


def test_top_level_names() -> None:
    assert sorted(modelyard.__all__) == sorted(
        [
            "LoadedModel",
            "ModelyardError",
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
