"""The data-quality report: its numbers equal pandas/numpy computations on a small frame,
the JSON round-trips, the HTML page is standalone with well-formed inline SVG plots, the
command line writes both files, and bad input is refused clearly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import start_server

from openmaker.processing.transforms.quality_report import (
    data_quality_report,
    infer_column_type,
    main,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [23, 35, 31, np.nan, 52, 46, 29, 120, 33, 41],
        "income": [30.5, 52.0, 48.1, 61.2, 90.0, 75.3, 40.0, 44.0, np.nan, 58.8],
        "city": ["Oslo", "Rome", "Oslo", "Paris", "Rome", "Oslo", None, "Paris", "Oslo",
                 "Rome"],
        "member": [True, False, True, True, False, True, False, True, True, True],
        "joined": pd.date_range("2020-01-01", periods=10, freq="MS"),
        "review": [f"the parcel number {i} arrived late" for i in range(10)],
        "label": ["yes"] * 7 + ["no"] * 3,
    })


def test_column_types_are_inferred(frame: pd.DataFrame) -> None:
    report = data_quality_report(frame, target="label")
    types = {name: entry["type"] for name, entry in report["columns"].items()}
    assert types == {"age": "numeric", "income": "numeric", "city": "categorical",
                     "member": "boolean", "joined": "datetime", "review": "text",
                     "label": "categorical"}
    assert infer_column_type(pd.Series(["2024-01-02", "2024-03-04T10:00:00"])) == "datetime"
    assert infer_column_type(pd.Series(["2024", "2025"])) == "categorical"
    assert infer_column_type(pd.Series([True, None, False], dtype=object)) == "boolean"
    assert infer_column_type(pd.Series(["a", "b"], dtype="category")) == "categorical"


def test_missing_values_and_summaries_equal_pandas(frame: pd.DataFrame) -> None:
    report = data_quality_report(frame)
    assert report["rows"] == 10 and report["column_count"] == 7
    assert report["missing_cells"] == int(frame.isna().sum().sum()) == 3
    for name in frame.columns:
        entry = report["columns"][name]
        assert entry["missing_count"] == int(frame[name].isna().sum())
        assert entry["missing_fraction"] == pytest.approx(frame[name].isna().mean())
    age = frame["age"].dropna()
    summary = report["columns"]["age"]["summary"]
    described = age.describe()
    for key in ("count", "mean", "std", "min", "25%", "50%", "75%", "max"):
        assert summary[key] == pytest.approx(described[key]), key
    assert summary["std"] == pytest.approx(np.std(age.to_numpy(), ddof=1))
    assert summary["50%"] == pytest.approx(np.median(age.to_numpy()))
    assert summary["skew"] == pytest.approx(age.skew())
    city = report["columns"]["city"]["summary"]["top_values"]
    assert city == [{"value": "Oslo", "count": 4, "fraction": pytest.approx(4 / 9)},
                    {"value": "Rome", "count": 3, "fraction": pytest.approx(3 / 9)},
                    {"value": "Paris", "count": 2, "fraction": pytest.approx(2 / 9)}]
    assert report["columns"]["member"]["summary"]["top_values"][0] == {
        "value": True, "count": 7, "fraction": pytest.approx(0.7)}
    joined = report["columns"]["joined"]["summary"]
    assert (joined["min"], joined["max"]) == ("2020-01-01T00:00:00", "2020-10-01T00:00:00")
    assert report["columns"]["review"]["summary"]["mean_words"] == 6.0


def test_iqr_outliers_per_numeric_column(frame: pd.DataFrame) -> None:
    report = data_quality_report(frame, iqr_factor=1.5)
    for name in ("age", "income"):
        values = frame[name].dropna().to_numpy()
        q1, q3 = np.percentile(values, [25, 75])
        lower, upper = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
        outliers = report["columns"][name]["outliers"]
        assert outliers["lower_fence"] == pytest.approx(lower)
        assert outliers["upper_fence"] == pytest.approx(upper)
        assert outliers["count"] == int(((values < lower) | (values > upper)).sum())
    assert report["columns"]["age"]["outliers"]["above"] == 1  # 120
    assert "outliers" not in report["columns"]["city"]


def test_infinite_and_empty_numeric_columns_are_reported_not_fatal(tmp_path: Path) -> None:
    data = pd.DataFrame({"spiky": [1.0, np.inf, 2.0, 3.0], "blank": [np.nan] * 4,
                         "fine": [1.0, 2.0, 3.0, 4.0]})
    report = data_quality_report(data, output_dir=tmp_path)
    assert report["columns"]["spiky"]["infinite_count"] == 1
    assert report["columns"]["spiky"]["summary"]["mean"] is None  # inf has no JSON form
    assert report["columns"]["blank"]["summary"] == {"count": 0}
    assert report["columns"]["blank"]["missing_fraction"] == 1.0
    assert report["correlations"]["pearson"][2][2] == 1.0
    page = (tmp_path / "report.html").read_text()
    assert "histogram of spiky" in page and "box plot of fine" in page


def test_class_balance_of_the_target(frame: pd.DataFrame) -> None:
    target = data_quality_report(frame, target="label")["target"]
    assert target["classes"] == [{"class": "yes", "count": 7, "fraction": 0.7},
                                 {"class": "no", "count": 3, "fraction": 0.3}]
    assert target["majority_class"] == "yes" and target["minority_class"] == "no"
    assert target["imbalance_ratio"] == pytest.approx(7 / 3)
    numeric = data_quality_report(pd.DataFrame({"y": np.arange(100.0)}), target="y",
                                  max_classes=50)["target"]
    assert numeric["classes"] is None and "regression" in numeric["note"]
    assert data_quality_report(frame.assign(n=[0, 1] * 5), target="n")["target"][
        "imbalance_ratio"] == 1.0


def test_correlations_equal_pandas_and_scipy(frame: pd.DataFrame) -> None:
    from scipy import stats

    data = frame.assign(score=np.arange(10.0))
    correlations = data_quality_report(data)["correlations"]
    assert correlations["columns"] == ["age", "income", "score"]
    numeric = data[["age", "income", "score"]]
    np.testing.assert_allclose(correlations["pearson"], numeric.corr().to_numpy())
    np.testing.assert_allclose(correlations["spearman"],
                               numeric.corr(method="spearman").to_numpy())
    # pairwise: each pair over the rows where both have a value
    pairwise = data[["age", "score"]].dropna()
    assert correlations["spearman"][0][2] == pytest.approx(
        stats.spearmanr(pairwise["age"], pairwise["score"]).statistic)
    r = stats.pearsonr(pairwise["age"], pairwise["score"]).statistic
    assert correlations["pearson"][0][2] == pytest.approx(r)
    constant = data_quality_report(pd.DataFrame({"a": [1.0, 2, 3], "b": [5.0, 5, 5]}))
    assert constant["correlations"]["pearson"][0][1] is None  # undefined, not NaN


def test_files_are_written_and_json_round_trips(frame: pd.DataFrame, tmp_path: Path) -> None:
    report = data_quality_report(frame, target="label", output_dir=tmp_path / "out")
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written == report
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html",
                                                                     "report.json"]


def test_html_is_standalone_with_the_plots(frame: pd.DataFrame, tmp_path: Path) -> None:
    data_quality_report(frame, target="label", output_dir=tmp_path, histogram_bins=5)
    page = (tmp_path / "report.html").read_text()
    assert not re.search(r"https?://|<script|<link|<img|@import|url\(", page, re.IGNORECASE)
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.DOTALL)
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed
    labels = [re.search(r'aria-label="([^"]*)"', svg).group(1) for svg in svgs]
    for name in ("age", "income"):
        assert f"histogram of {name}" in labels and f"box plot of {name}" in labels
    assert "Pearson correlation" in labels and "Spearman correlation" in labels
    assert "class balance of label" in labels
    histogram = svgs[labels.index("histogram of age")]
    counts, _ = np.histogram(frame["age"].dropna(), bins=5)
    drawn = [int(c) for c in re.findall(r"<rect[^>]*><title>[^<]*: (\d+)</title>", histogram)]
    assert drawn == counts.tolist()
    box = svgs[labels.index("box plot of age")]
    assert box.count("<circle") == 1  # the one value above the upper fence
    heat = svgs[labels.index("Pearson correlation")]
    assert heat.count("<rect") == 4 and "1.00" in heat


def test_empty_and_bad_input_are_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no rows"):
        data_quality_report(frame.iloc[:0], output_dir=tmp_path)
    with pytest.raises(ValueError, match="no columns"):
        data_quality_report(pd.DataFrame())
    with pytest.raises(ValueError, match="target 'nope' is not a column"):
        data_quality_report(frame, target="nope", output_dir=tmp_path)
    with pytest.raises(ValueError, match="histogram_bins must be an integer"):
        data_quality_report(frame, histogram_bins=0)
    assert list(tmp_path.iterdir()) == []  # nothing written for a refused report


def test_command_line_reads_csv_and_parquet(frame: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    result = subprocess.run(
        [sys.executable, "-m", "openmaker.processing.transforms.quality_report", str(csv),
         str(tmp_path / "csv-report"), "--target", "label"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "csv-report" / "report.json").read_text())
    assert report["target"]["imbalance_ratio"] == pytest.approx(7 / 3)
    assert report["columns"]["joined"]["type"] == "datetime"  # ISO strings in the CSV
    assert (tmp_path / "csv-report" / "report.html").stat().st_size > 0
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:6].to_parquet(folder / "a.parquet")
    frame.iloc[6:].to_parquet(folder / "b.parquet")
    assert main([str(folder), str(tmp_path / "pq-report")]) == 0
    assert json.loads((tmp_path / "pq-report" / "report.json").read_text())["rows"] == 10


def test_command_line_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    assert main([str(empty), str(tmp_path / "out")]) == 2
    assert "no rows" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv"), str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_processing_job_writes_the_report_with_the_command_line(
        frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(tmp_path_factory.mktemp("quality-report-home"))
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="reports")
        s3.put_object(Bucket="reports", Key="data/part.csv",
                      Body=frame.to_csv(index=False).encode())
        sagemaker = server.client("sagemaker")
        sagemaker.create_processing_job(
            ProcessingJobName="quality-report",
            ProcessingInputs=[{"InputName": "data", "S3Input": {
                "S3Uri": "s3://reports/data/", "LocalPath": "/opt/ml/processing/input/data",
                "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            ProcessingOutputConfig={"Outputs": [{"OutputName": "report", "S3Output": {
                "S3Uri": "s3://reports/report/", "LocalPath": "/opt/ml/processing/output",
                "S3UploadMode": "EndOfJob"}}]},
            ProcessingResources={"ClusterConfig": {"InstanceCount": 1,
                                                   "InstanceType": "ml.m5.large",
                                                   "VolumeSizeInGB": 5}},
            AppSpecification={
                "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/"
                            "sagemaker-scikit-learn:1.2-1-cpu-py3",
                "ContainerEntrypoint": ["python3", "-m",
                                        "openmaker.processing.transforms.quality_report"],
                "ContainerArguments": ["/opt/ml/processing/input/data",
                                       "/opt/ml/processing/output", "--target", "label"]},
            RoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
            StoppingCondition={"MaxRuntimeInSeconds": 120})
        deadline = time.monotonic() + 90
        while True:
            job = sagemaker.describe_processing_job(ProcessingJobName="quality-report")
            if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            assert time.monotonic() < deadline, job["ProcessingJobStatus"]
            time.sleep(0.2)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        report = json.loads(s3.get_object(Bucket="reports", Key="report/report.json")
                            ["Body"].read())
        assert report["rows"] == 10
        assert report["target"]["classes"][0] == {"class": "yes", "count": 7,
                                                  "fraction": 0.7}
        page = s3.get_object(Bucket="reports", Key="report/report.html")["Body"].read()
        assert b"<svg" in page and b"histogram of age" in page
    finally:
        server.stop()
