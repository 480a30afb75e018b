"""save/load: a fitted transform or pipeline round-trips with identical output, the
manifest records versions and the fitted schema, writes are atomic (no temporary files
left, a damaged model refused), and unfitted objects or foreign folders are refused."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.pipeline import Pipeline

from openmaker import __version__
from openmaker.processing.transforms import (
    Imputer,
    OneHotEncoder,
    SchemaMismatchError,
    StandardScaler,
    TfidfVectorizer,
    load,
    save,
)
from openmaker.processing.transforms.persistence import MANIFEST_FILE, MODEL_FILE, read_manifest


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "colour": ["a", "b", "a", None],
                         "note": ["good day", "bad day", "good", "day"]})


def pipeline() -> Pipeline:
    return Pipeline([("impute", Imputer("most_frequent")), ("scale", StandardScaler()),
                     ("onehot", OneHotEncoder(columns=["colour"])),
                     ("tfidf", TfidfVectorizer(columns=["note"]))])


def test_a_saved_pipeline_loads_and_transforms_identically(frame, tmp_path) -> None:
    fitted = pipeline().fit(frame)
    path = save(fitted, tmp_path / "model")
    assert path == tmp_path / "model" / MODEL_FILE
    assert sorted(os.listdir(tmp_path / "model")) == [MANIFEST_FILE, MODEL_FILE]
    restored = load(tmp_path / "model")
    pd.testing.assert_frame_equal(restored.transform(frame), fitted.transform(frame))
    with pytest.raises(SchemaMismatchError, match="missing columns 'note'"):
        restored.transform(frame.drop(columns=["note"]))


def test_the_manifest_records_versions_schema_and_outputs(frame, tmp_path) -> None:
    fitted = pipeline().fit(frame)
    save(fitted, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest == read_manifest(tmp_path)
    assert manifest["format"] == "openmaker-transforms"
    assert manifest["openmaker_version"] == __version__
    assert manifest["sklearn_version"] == sklearn.__version__
    assert manifest["class"] == "sklearn.pipeline.Pipeline"
    assert manifest["schema"] == [{"name": "x", "kind": "numeric"},
                                  {"name": "colour", "kind": "string"},
                                  {"name": "note", "kind": "string"}]
    assert manifest["feature_names_out"] == list(fitted.get_feature_names_out())
    single = StandardScaler().fit(frame)
    save(single, tmp_path / "one")
    assert read_manifest(tmp_path / "one")["class"].endswith("scaling.StandardScaler")


def test_saving_again_replaces_both_files_without_leftovers(frame, tmp_path) -> None:
    save(StandardScaler().fit(frame), tmp_path)
    save(StandardScaler(with_mean=False).fit(frame), tmp_path)
    assert sorted(os.listdir(tmp_path)) == [MANIFEST_FILE, MODEL_FILE]
    assert load(tmp_path).with_mean is False


def test_a_damaged_or_replaced_model_file_is_refused(frame, tmp_path) -> None:
    save(StandardScaler().fit(frame), tmp_path)
    with open(tmp_path / MODEL_FILE, "ab") as handle:
        handle.write(b"tail")
    with pytest.raises(ValueError, match="does not match its manifest"):
        load(tmp_path)


def test_unfitted_objects_and_folders_without_a_manifest_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="StandardScaler is not fitted"):
        save(StandardScaler(), tmp_path)
    with pytest.raises(ValueError, match="is not a scikit-learn estimator"):
        save(object(), tmp_path)
    assert not (tmp_path / MODEL_FILE).exists()
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="is not an openmaker-transforms manifest"):
        load(tmp_path)
