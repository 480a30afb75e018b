"""openmaker: a local-first machine learning platform that speaks the SageMaker and AWS
data-service APIs.

The public names are the SDK's; they are imported on first use so that ``openmaker
--help`` and the server start without loading boto3.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["BytesDeserializer", "CSVDeserializer", "CSVSerializer", "CategoricalParameter",
           "ContinuousParameter", "EndpointDeploymentError", "Estimator", "HyperparameterTuner",
           "HyperparameterTuningJobAnalytics", "IdentitySerializer", "IntegerParameter",
           "JSONDeserializer", "JSONLinesDeserializer", "JSONLinesSerializer", "JSONSerializer",
           "Model", "NumpyDeserializer", "NumpySerializer", "Predictor", "ProcessingInput",
           "ProcessingJobFailedError", "ProcessingOutput", "Processor", "RecordDeserializer",
           "RecordSerializer", "ScriptProcessor", "ServerStartError", "Session", "StorageEntry",
           "StringDeserializer", "TrainingInput", "TrainingJobAnalytics",
           "TrainingJobFailedError", "TransformJobFailedError", "Transformer",
           "TuningJobFailedError", "WarmStartConfig", "WarmStartTypes", "__version__"]


def __getattr__(name: str):
    if name in __all__ and name != "__version__":
        from openmaker import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'openmaker' has no attribute {name!r}")
