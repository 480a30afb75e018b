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
from openmaker.processing.transforms.imbalance import (  # noqa: E402
    ADASYNSampling,
    EditedNearestNeighboursSampling,
    RandomOverSampling,
    RandomUnderSampling,
    SMOTESampling,
)
from openmaker.processing.transforms.outliers import (  # noqa: E402
    IQROutliers,
    LocalOutlierFactorOutliers,
    ZScoreOutliers,
    iqr_fences,
)
from openmaker.processing.transforms.splitting import (  # noqa: E402
    ForwardChainingSplit,
    HoldoutSplit,
    KFoldSplit,
    LeaveOneOutSplit,
    StratifiedKFoldSplit,
    holdout_split,
)

_QUALITY_REPORT_NAMES = ("data_quality_report", "infer_column_type")

__all__ += [
    "ADASYNSampling",
    "EditedNearestNeighboursSampling",
    "ForwardChainingSplit",
    "HoldoutSplit",
    "IQROutliers",
    "KFoldSplit",
    "LeaveOneOutSplit",
    "LocalOutlierFactorOutliers",
    "RandomOverSampling",
    "RandomUnderSampling",
    "SMOTESampling",
    "StratifiedKFoldSplit",
    "ZScoreOutliers",
    "holdout_split",
    "iqr_fences",
    *_QUALITY_REPORT_NAMES,
]


def __getattr__(name: str) -> object:
    # quality_report also runs as `python -m`; importing it with the package would make
    # runpy warn that the module was imported before it ran, so it loads on first use.
    if name in _QUALITY_REPORT_NAMES:
        from openmaker.processing.transforms import quality_report

        return getattr(quality_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
