"""Hold-out, stratified, k-fold, stratified k-fold, forward-chaining and leave-one-out
splits: which rows land where, seeds, and refusing to shuffle time series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import (
    KFold,
    StratifiedKFold,
    TimeSeriesSplit,
    cross_val_score,
    train_test_split,
)

from openmaker.processing.transforms.splitting import (
    ForwardChainingSplit,
    KFoldSplit,
    LeaveOneOutSplit,
    StratifiedKFoldSplit,
    holdout_split,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(20, dtype=float),
                         "label": ["a"] * 15 + ["b"] * 5},
                        index=[f"r{i}" for i in range(20)])


def test_holdout_sizes_partition_and_seed(frame: pd.DataFrame) -> None:
    split = holdout_split(frame, test_size=0.25, validation_size=0.25, random_state=3)
    assert (len(split.train), len(split.validation), len(split.test)) == (10, 5, 5)
    rows = list(split.train.index) + list(split.validation.index) + list(split.test.index)
    assert sorted(rows) == sorted(frame.index)
    again = holdout_split(frame, test_size=0.25, validation_size=0.25, random_state=3)
    assert list(again.test.index) == list(split.test.index)
    # the test part is exactly scikit-learn's train_test_split with the same seed
    _, expected_test = train_test_split(np.arange(20), test_size=5, random_state=3)
    assert list(split.test.index) == [f"r{i}" for i in expected_test]


def test_holdout_without_validation_and_without_shuffle(frame: pd.DataFrame) -> None:
    split = holdout_split(frame, test_size=4, shuffle=False)
    assert split.validation is None
    assert list(split.train["x"]) == list(range(16))
    assert list(split.test["x"]) == [16.0, 17.0, 18.0, 19.0]


def test_stratified_holdout_keeps_class_shares(frame: pd.DataFrame) -> None:
    split = holdout_split(frame, test_size=0.2, validation_size=0.2, stratify="label",
                          random_state=0)
    for part in (split.test, split.validation):
        assert part["label"].value_counts().to_dict() == {"a": 3, "b": 1}
    assert split.train["label"].value_counts().to_dict() == {"a": 9, "b": 3}


def test_stratify_rejects_scarce_class_and_unknown_column(frame: pd.DataFrame) -> None:
    scarce = frame.assign(label=["a"] * 19 + ["b"])
    with pytest.raises(ValueError, match=r"at least 2 rows.*'b': 1"):
        holdout_split(scarce, stratify="label")
    with pytest.raises(ValueError, match="'nope' is not a column"):
        holdout_split(frame, stratify="nope")


def test_holdout_rejects_bad_sizes_and_empty_input(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="test_size as a fraction"):
        holdout_split(frame, test_size=1.5)
    with pytest.raises(ValueError, match="leave no training rows"):
        holdout_split(frame, test_size=0.5, validation_size=0.5)
    with pytest.raises(ValueError, match="no rows"):
        holdout_split(frame.iloc[:0])


def test_chronological_holdout_takes_latest_rows_as_test_and_refuses_shuffle() -> None:
    times = pd.date_range("2024-01-01", periods=10, freq="D")
    frame = pd.DataFrame({"when": times[::-1], "y": np.arange(10)})
    split = holdout_split(frame, test_size=0.2, validation_size=0.2, order_column="when",
                          sort=True)
    assert list(split.test["when"]) == list(times[-2:])
    assert list(split.validation["when"]) == list(times[-4:-2])
    assert split.train["when"].max() < split.validation["when"].min()
    with pytest.raises(ValueError, match="shuffle=True is not allowed for time series"):
        holdout_split(frame, order_column="when", sort=True, shuffle=True)
    with pytest.raises(ValueError, match="'when' is not sorted"):
        holdout_split(frame, order_column="when")


def test_k_fold_matches_scikit_learn_and_covers_every_row(frame: pd.DataFrame) -> None:
    ours = list(KFoldSplit(4, shuffle=True, random_state=7).split(frame))
    theirs = list(KFold(4, shuffle=True, random_state=7).split(frame))
    assert len(ours) == 4
    for (train, test), (expected_train, expected_test) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, expected_train)
        np.testing.assert_array_equal(test, expected_test)
    assert sorted(np.concatenate([test for _, test in ours]).tolist()) == list(range(20))
    unshuffled = [test.tolist() for _, test in KFoldSplit(4).split(frame)]
    assert unshuffled[0] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n_splits=30 is more than the 20 rows"):
        list(KFoldSplit(30).split(frame))


def test_stratified_k_fold_keeps_shares_and_reads_the_label_column(frame: pd.DataFrame
                                                                   ) -> None:
    splitter = StratifiedKFoldSplit(5, stratify="label", shuffle=True, random_state=1)
    folds = list(splitter.split_frames(frame))
    assert len(folds) == 5
    for train, test in folds:
        assert test["label"].value_counts().to_dict() == {"a": 3, "b": 1}
        assert len(train) == 16
    expected = StratifiedKFold(5, shuffle=True, random_state=1).split(frame, frame["label"])
    for (_, test), (_, expected_test) in zip(splitter.split(frame), expected, strict=True):
        np.testing.assert_array_equal(test, expected_test)
    with pytest.raises(ValueError, match=r"at least 6 rows.*'b': 5"):
        list(StratifiedKFoldSplit(6).split(frame, frame["label"]))
    with pytest.raises(ValueError, match="pass the class labels"):
        list(StratifiedKFoldSplit(5).split(frame))


def test_forward_chaining_trains_on_first_blocks_and_tests_on_the_next() -> None:
    frame = pd.DataFrame({"t": np.arange(12), "y": np.arange(12) * 2.0})
    folds = list(ForwardChainingSplit(3, order_column="t").split(frame))
    assert [train.tolist() for train, _ in folds] == [
        [0, 1, 2], [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 6, 7, 8]]
    assert [test.tolist() for _, test in folds] == [[3, 4, 5], [6, 7, 8], [9, 10, 11]]
    expected = [test.tolist() for _, test in TimeSeriesSplit(3).split(frame)]
    assert [test.tolist() for _, test in folds] == expected


def test_forward_chaining_sorts_when_asked_and_indexes_the_frame_as_given() -> None:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=8, freq="h")
    frame = pd.DataFrame({"when": times, "y": np.arange(8)}).iloc[rng.permutation(8)]
    with pytest.raises(ValueError, match="order_column 'when' is not sorted"):
        list(ForwardChainingSplit(3, order_column="when").split(frame))
    for train, test in ForwardChainingSplit(3, order_column="when", sort=True
                                            ).split_frames(frame):
        assert train["when"].max() < test["when"].min()
        assert test["when"].is_monotonic_increasing


def test_forward_chaining_refuses_shuffle() -> None:
    with pytest.raises(ValueError, match="not allowed for time series"):
        ForwardChainingSplit(3, shuffle=True)
    splitter = ForwardChainingSplit(3)
    splitter.shuffle = True  # set after construction, as set_params-style code would
    with pytest.raises(ValueError, match="not allowed for time series"):
        list(splitter.split(np.zeros((10, 1))))


def test_forward_chaining_reports_too_few_rows() -> None:
    with pytest.raises(ValueError, match="ForwardChainingSplit"):
        list(ForwardChainingSplit(3, test_size=4).split(np.zeros((10, 1))))


def test_leave_one_out_yields_one_fold_per_row() -> None:
    data = np.arange(5).reshape(-1, 1)
    folds = list(LeaveOneOutSplit().split(data))
    assert [test.tolist() for _, test in folds] == [[0], [1], [2], [3], [4]]
    assert folds[2][0].tolist() == [0, 1, 3, 4]
    assert LeaveOneOutSplit().get_n_splits(data) == 5


def test_splitters_work_as_scikit_learn_cv() -> None:
    X = np.arange(30, dtype=float).reshape(-1, 1)
    y = 3 * X[:, 0] + 1
    for splitter in (KFoldSplit(3), ForwardChainingSplit(3), LeaveOneOutSplit()):
        scores = cross_val_score(LinearRegression(), X, y, cv=splitter,
                                 scoring="neg_mean_absolute_error")
        assert len(scores) == splitter.get_n_splits(X)
        np.testing.assert_allclose(scores, 0.0, atol=1e-9)
