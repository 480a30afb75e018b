"""The data-preparation library: fit/transform objects (scikit-learn estimators working on
DataFrames) for processing scripts, pipelines and the first container of an inference
pipeline. See docs/data-preparation.md; the contract is in ``_base.py``."""

from openmaker.processing.transforms import persistence, serving
from openmaker.processing.transforms._base import (
    FittedSchemaMixin,
    FrameTransformer,
    SchemaMismatchError,
    fitted_schema,
)
from openmaker.processing.transforms.binning import CustomBinner, KBinsDiscretizer
from openmaker.processing.transforms.cyclical import CyclicalEncoder
from openmaker.processing.transforms.encoding import (
    HashingEncoder,
    OneHotEncoder,
    OrdinalEncoder,
    TargetEncoder,
)
from openmaker.processing.transforms.imputation import (
    FillImputer,
    Imputer,
    InterpolationImputer,
    IterativeImputer,
    KNNImputer,
)
from openmaker.processing.transforms.persistence import load, save
from openmaker.processing.transforms.scaling import (
    MathTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    PowerTransformer,
    RobustScaler,
    StandardScaler,
)
from openmaker.processing.transforms.text import (
    CartesianProduct,
    CountVectorizer,
    OrthogonalSparseBigrams,
    StopWordRemover,
    TfidfVectorizer,
    Tokenizer,
)

__all__ = [
    "CartesianProduct",
    "CountVectorizer",
    "CustomBinner",
    "CyclicalEncoder",
    "FillImputer",
    "FittedSchemaMixin",
    "FrameTransformer",
    "HashingEncoder",
    "Imputer",
    "InterpolationImputer",
    "IterativeImputer",
    "KBinsDiscretizer",
    "KNNImputer",
    "MathTransformer",
    "MaxAbsScaler",
    "MinMaxScaler",
    "Normalizer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "OrthogonalSparseBigrams",
    "PowerTransformer",
    "RobustScaler",
    "SchemaMismatchError",
    "StandardScaler",
    "StopWordRemover",
    "TargetEncoder",
    "TfidfVectorizer",
    "Tokenizer",
    "fitted_schema",
    "load",
    "persistence",
    "save",
    "serving",
]

# outliers, class imbalance, splitting, data-quality report (3b)
