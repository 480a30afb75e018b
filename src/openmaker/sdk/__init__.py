"""The Pythonic SDK: sessions bound to an openmaker server, built on boto3 clients,
estimators that run training jobs on it, tuners that search their hyperparameters, their
metrics as DataFrames, models deployed to endpoints, predictors (with the SageMaker SDK's
serializers) that call them, transformers that run batch transform jobs, and processors
that run processing jobs."""

from openmaker.sdk.analytics import TrainingJobAnalytics
from openmaker.sdk.estimator import Estimator, TrainingInput, TrainingJobFailedError
from openmaker.sdk.model import EndpointDeploymentError, Model
from openmaker.sdk.predictor import Predictor
from openmaker.sdk.processing import (
    ProcessingInput,
    ProcessingJobFailedError,
    ProcessingOutput,
    Processor,
    ScriptProcessor,
)
from openmaker.sdk.serializers import (
    BytesDeserializer,
    CSVDeserializer,
    CSVSerializer,
    IdentitySerializer,
    JSONDeserializer,
    JSONLinesDeserializer,
    JSONLinesSerializer,
    JSONSerializer,
    NumpyDeserializer,
    NumpySerializer,
    RecordDeserializer,
    RecordSerializer,
    StringDeserializer,
)
from openmaker.sdk.session import ServerStartError, Session, StorageEntry
from openmaker.sdk.transformer import Transformer, TransformJobFailedError
from openmaker.sdk.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperparameterTuner,
    HyperparameterTuningJobAnalytics,
    IntegerParameter,
    TuningJobFailedError,
    WarmStartConfig,
    WarmStartTypes,
)

__all__ = ["BytesDeserializer", "CSVDeserializer", "CSVSerializer", "CategoricalParameter",
           "ContinuousParameter", "EndpointDeploymentError", "Estimator", "HyperparameterTuner",
           "HyperparameterTuningJobAnalytics", "IdentitySerializer", "IntegerParameter",
           "JSONDeserializer", "JSONLinesDeserializer", "JSONLinesSerializer", "JSONSerializer",
           "Model", "NumpyDeserializer", "NumpySerializer", "Predictor", "ProcessingInput",
           "ProcessingJobFailedError", "ProcessingOutput", "Processor", "RecordDeserializer",
           "RecordSerializer", "ScriptProcessor", "ServerStartError", "Session", "StorageEntry",
           "StringDeserializer", "TrainingInput", "TrainingJobAnalytics",
           "TrainingJobFailedError", "TransformJobFailedError", "Transformer",
           "TuningJobFailedError", "WarmStartConfig", "WarmStartTypes"]
