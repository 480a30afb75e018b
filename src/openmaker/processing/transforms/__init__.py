"""The data-preparation library: fit/transform objects for processing scripts, pipelines and
the first container of an inference pipeline. See docs/data-preparation.md."""

from openmaker.processing.transforms._base import (
    FittedSchemaMixin,
    FrameTransformer,
    SchemaMismatchError,
    fitted_schema,
)

__all__ = [
    "FittedSchemaMixin",
    "FrameTransformer",
    "SchemaMismatchError",
    "fitted_schema",
]

# outliers, class imbalance, splitting, data-quality report (3b)
