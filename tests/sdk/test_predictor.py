"""``openmaker.Predictor``, ``Model`` and ``Estimator.deploy``: the serializers against the
SageMaker SDK's own, and deploy/predict/delete against a real server with real model-server
processes (built-in XGBoost, and a framework model with an entry point)."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server

from openmaker import (
    BytesDeserializer,
    CSVDeserializer,
    CSVSerializer,
    EndpointDeploymentError,
    Estimator,
    IdentitySerializer,
    JSONDeserializer,
    JSONLinesDeserializer,
    JSONLinesSerializer,
    JSONSerializer,
    Model,
    NumpyDeserializer,
    NumpySerializer,
    Predictor,
    RecordDeserializer,
    RecordSerializer,
    Session,
    StringDeserializer,
    TrainingInput,
)

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = ("683313688378.dkr.ecr.us-east-1.amazonaws.com/"
                 "sagemaker-scikit-learn:1.2-1-cpu-py3")
BUCKET = "predictor-models"
INFERENCE = '''
import json, os
import numpy as np

def model_fn(model_dir):
    return json.load(open(os.path.join(model_dir, "weights.json")))

def input_fn(body, content_type):
    return np.array(json.loads(body)["rows"], dtype=float)

def predict_fn(rows, weights):
    return rows @ np.array(weights["w"])

def output_fn(prediction, accept):
    return json.dumps({"scores": prediction.tolist()}), "application/json"
'''


class Stream(io.BytesIO):
    """A response body that records whether the deserializer closed it."""


def stream(data: bytes | str) -> Stream:
    return Stream(data.encode() if isinstance(data, str) else data)


# -- serializers: the SageMaker SDK's behaviour ---------------------------------------------
@pytest.mark.parametrize("data", [
    [1, 2, 3], [[1, 2], [3, 4]], np.array([[1.5, 2.0], [3.0, 4.25]]), np.array([1, 2, 3]),
    "1,2,3", [np.array([1, 2]), np.array([3, 4])],
])
def test_csv_serializer_matches_the_sagemaker_sdk(data):
    from sagemaker.serializers import CSVSerializer as SdkCSVSerializer

    assert CSVSerializer().serialize(data) == SdkCSVSerializer().serialize(data)
    assert CSVSerializer().CONTENT_TYPE == "text/csv"


def test_csv_serializer_reads_files_and_dataframes_and_rejects_empty_rows():
    import pandas as pd

    assert CSVSerializer().serialize(io.StringIO("1,2\n3,4")) == "1,2\n3,4"
    frame = pd.DataFrame({"a": [1, 3], "b": [2, 4]})
    assert CSVSerializer().serialize(frame) == "1,2\n3,4\n"
    with pytest.raises(ValueError, match="empty"):
        CSVSerializer().serialize([])


@pytest.mark.parametrize("data", [
    {"rows": np.array([1, 2])}, [1, 2, 3], np.array([[1.0, 2.0]]), "text", 3.5,
])
def test_json_serializer_matches_the_sagemaker_sdk(data):
    from sagemaker.serializers import JSONSerializer as SdkJSONSerializer

    assert JSONSerializer().serialize(data) == SdkJSONSerializer().serialize(data)
    assert JSONSerializer().CONTENT_TYPE == "application/json"


def test_jsonlines_numpy_and_identity_serializers():
    from sagemaker.serializers import NumpySerializer as SdkNumpySerializer

    assert JSONLinesSerializer().serialize([{"a": 1}, [2]]) == '{"a": 1}\n[2]'
    assert JSONLinesSerializer().CONTENT_TYPE == "application/jsonlines"
    with pytest.raises(ValueError, match="JSON Lines"):
        JSONLinesSerializer().serialize(3)
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert NumpySerializer().serialize(array) == SdkNumpySerializer().serialize(array)
    assert np.array_equal(np.load(io.BytesIO(NumpySerializer().serialize([[1, 2]]))),
                          [[1, 2]])
    assert NumpySerializer(dtype="float32").serialize([1, 2]) == \
        SdkNumpySerializer(dtype="float32").serialize([1, 2])
    assert NumpySerializer().CONTENT_TYPE == "application/x-npy"
    with pytest.raises(ValueError, match="empty"):
        NumpySerializer().serialize(np.array([]))
    assert IdentitySerializer().serialize(b"\x00raw") == b"\x00raw"
    assert IdentitySerializer("image/png").CONTENT_TYPE == "image/png"
    with pytest.raises(ValueError, match="content_type must be a string"):
        CSVSerializer(content_type=None)


def test_record_serializer_writes_the_sagemaker_sdk_bytes_and_round_trips():
    from sagemaker.deserializers import RecordDeserializer as SdkRecordDeserializer
    from sagemaker.serializers import RecordSerializer as SdkRecordSerializer

    array = np.array([[1.0, 2.0, 3.0], [4.0, 5.5, 6.0]], dtype=np.float32)
    ours = RecordSerializer().serialize(array)
    assert ours == SdkRecordSerializer().serialize(array).getvalue()
    assert RecordSerializer().CONTENT_TYPE == "application/x-recordio-protobuf"
    records = RecordDeserializer().deserialize(stream(ours), "application/x-recordio-protobuf")
    assert [r.features["values"].to_dense().tolist() for r in records] == array.tolist()
    sdk_records = SdkRecordDeserializer().deserialize(stream(ours), "")
    assert list(sdk_records[1].features["values"].float32_tensor.values) == [4.0, 5.5, 6.0]
    [one] = RecordDeserializer().deserialize(stream(RecordSerializer().serialize(array[0])), "")
    assert one.features["values"].to_dense().tolist() == array[0].tolist()
    with pytest.raises(ValueError, match="1D or 2D"):
        RecordSerializer().serialize(np.zeros((2, 2, 2)))


# -- deserializers --------------------------------------------------------------------------
def test_deserializers_read_and_close_the_stream():
    cases = [
        (BytesDeserializer(), b"\x01\x02", "application/octet-stream", b"\x01\x02"),
        (StringDeserializer(), "héllo".encode(), "text/plain", "héllo"),
        (CSVDeserializer(), b"1,2\n3,4\n", "text/csv", [["1", "2"], ["3", "4"]]),
        (JSONDeserializer(), b'{"a": [1, 2]}', "application/json", {"a": [1, 2]}),
        (JSONLinesDeserializer(), b'{"a": 1}\n[2]\n', "application/jsonlines",
         [{"a": 1}, [2]]),
    ]
    for deserializer, body, content_type, expected in cases:
        body_stream = stream(body)
        assert deserializer.deserialize(body_stream, content_type) == expected
        assert body_stream.closed


def test_numpy_deserializer_reads_csv_json_and_npy():
    numpy = NumpyDeserializer()
    assert numpy.deserialize(stream("1,2\n3,4"), "text/csv").tolist() == [[1, 2], [3, 4]]
    assert numpy.deserialize(stream("[[1, 2]]"), "application/json").tolist() == [[1, 2]]
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    assert numpy.deserialize(stream(buffer.getvalue()), "application/x-npy").tolist() == \
        [0, 1, 2]
    with pytest.raises(ValueError, match="cannot read content type image/png"):
        numpy.deserialize(stream(b""), "image/png")


def test_accept_types_are_tuples_as_in_the_sagemaker_sdk():
    from sagemaker import deserializers

    for ours, theirs in [(CSVDeserializer(), deserializers.CSVDeserializer()),
                         (JSONDeserializer(), deserializers.JSONDeserializer()),
                         (JSONLinesDeserializer(), deserializers.JSONLinesDeserializer()),
                         (NumpyDeserializer(), deserializers.NumpyDeserializer()),
                         (RecordDeserializer(), deserializers.RecordDeserializer()),
                         (BytesDeserializer(), deserializers.BytesDeserializer()),
                         (StringDeserializer(), deserializers.StringDeserializer())]:
        assert ours.ACCEPT == theirs.ACCEPT
    assert CSVDeserializer(accept=("text/csv", "application/json")).ACCEPT == \
        ("text/csv", "application/json")


def test_predictor_request_uses_the_serializers_and_initial_args():
    predictor = Predictor("ep", session=object(), serializer=CSVSerializer(),
                          deserializer=JSONDeserializer(accept=("application/json",
                                                                "text/csv")))
    assert predictor.content_type == "text/csv"
    assert predictor.accept == ("application/json", "text/csv")
    request = predictor._request([[1, 2]], {"Accept": "text/csv"}, "blue", "trace=1", "id-1")
    assert request == {"EndpointName": "ep", "ContentType": "text/csv", "Accept": "text/csv",
                       "TargetVariant": "blue", "CustomAttributes": "trace=1",
                       "InferenceId": "id-1", "Body": "1,2"}
    plain = Predictor("ep", session=object())
    assert (plain.content_type, plain.accept) == ("application/octet-stream", ("*/*",))


# -- against a server -----------------------------------------------------------------------
def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("predictor-home"))
    session = Session(running.url, home=tmp_path_factory.mktemp("predictor-client"))
    session.make_bucket(BUCKET)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.float32)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(features, label=labels), 10)
    session.s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    session.s3.put_object(Bucket=BUCKET, Key="broken/model.tar.gz", Body=b"not a tar archive")
    session.s3.put_object(Bucket=BUCKET, Key="linear/model.tar.gz", Body=tar_bytes(
        {"weights.json": json.dumps({"w": [1.0, 2.0]}).encode()}))
    yield running, session, booster, features, labels
    running.stop()


@pytest.mark.timeout(180)
def test_model_deploy_predict_and_delete_with_built_in_xgboost(hosting, capsys):
    _, session, booster, features, _ = hosting
    model = Model(XGBOOST_IMAGE, model_data=f"s3://{BUCKET}/xgb/model.tar.gz",
                  session=session)
    predictor = model.deploy(instance_type="ml.m5.large", serializer=CSVSerializer(),
                             deserializer=CSVDeserializer())
    assert capsys.readouterr().out.rstrip().endswith("!")  # the SDK's progress line
    assert isinstance(predictor, Predictor) and predictor.endpoint_name == model.name
    expected = booster.predict(xgboost.DMatrix(features[:5]))

    rows = predictor.predict(features[:5])
    assert np.allclose([float(row[0]) for row in rows], expected, atol=1e-6)
    assert predictor.last_invocation["InvokedProductionVariant"] == "AllTraffic"

    predictor.serializer = RecordSerializer()
    predictor.deserializer = JSONDeserializer()
    answer = predictor.predict(features[:5], target_variant="AllTraffic")
    assert np.allclose([p["score"] for p in answer["predictions"]], expected, atol=1e-6)

    with pytest.raises(ClientError, match="TargetVariant"):
        predictor.predict(features[:1], target_variant="nope")

    predictor.delete_model()
    predictor.delete_endpoint()
    sagemaker = session.sagemaker
    for call, key in [(sagemaker.describe_endpoint, "EndpointName"),
                      (sagemaker.describe_endpoint_config, "EndpointConfigName")]:
        with pytest.raises(ClientError):
            call(**{key: model.name})
    with pytest.raises(ClientError):
        sagemaker.describe_model(ModelName=model.name)


@pytest.mark.timeout(120)
def test_failed_deploy_raises_with_the_failure_reason(hosting):
    _, session, *_ = hosting
    model = Model(XGBOOST_IMAGE, model_data=f"s3://{BUCKET}/broken/model.tar.gz",
                  session=session, name="broken-model")
    with pytest.raises(EndpointDeploymentError, match="Error hosting endpoint broken-model: "
                                                      "Failed. Reason: ") as failure:
        model.deploy(endpoint_name="broken-model")
    assert failure.value.failure_reason
    session.sagemaker.delete_endpoint(EndpointName="broken-model")
    model.delete_model()


@pytest.mark.timeout(120)
def test_model_with_an_entry_point_serves_the_uploaded_code(hosting, tmp_path):
    _, session, *_ = hosting
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(INFERENCE)
    model = Model(SKLEARN_IMAGE, model_data=f"s3://{BUCKET}/linear/model.tar.gz",
                  entry_point="inference.py", source_dir=str(tmp_path / "code"),
                  session=session, env={"EXTRA": "1"})
    predictor = model.deploy(serializer=JSONSerializer(), deserializer=JSONDeserializer(),
                             tags={"team": "ml"})
    try:
        assert predictor.predict({"rows": [[1, 1], [2, 0.5]]}) == {"scores": [3.0, 3.0]}
        container = session.sagemaker.describe_model(ModelName=model.name)["PrimaryContainer"]
        environment = container["Environment"]
        assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
        assert environment["SAGEMAKER_SUBMIT_DIRECTORY"].endswith(
            f"/{model.name}/sourcedir.tar.gz")
        assert environment["EXTRA"] == "1"
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


@pytest.mark.timeout(240)
def test_estimator_fit_deploy_predict(hosting):
    _, session, booster, features, labels = hosting
    rows = "".join(f"{int(label)}," + ",".join(f"{v:.6g}" for v in row) + "\n"
                   for label, row in zip(labels, features, strict=True))
    session.s3.put_object(Bucket=BUCKET, Key="data/train.csv", Body=rows.encode())
    estimator = Estimator(XGBOOST_IMAGE, session=session,
                          hyperparameters={"objective": "binary:logistic", "num_round": 10,
                                           "max_depth": 3})
    estimator.fit({"train": TrainingInput(f"s3://{BUCKET}/data/", content_type="text/csv")},
                  logs=False)
    predictor = estimator.deploy(1, "ml.m5.large", serializer=CSVSerializer(),
                                 deserializer=JSONLinesDeserializer())
    try:
        assert predictor.endpoint_name == estimator.latest_training_job
        answer = predictor.predict(features[:10])
        scores = np.array([line["score"] for line in answer])
        assert ((scores > 0.5) == (labels[:10] > 0.5)).mean() >= 0.8
        model = session.sagemaker.describe_model(ModelName=predictor.endpoint_name)
        assert model["PrimaryContainer"]["Image"] == XGBOOST_IMAGE
        assert model["PrimaryContainer"]["ModelDataUrl"] == estimator.model_data
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
