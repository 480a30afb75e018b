"""Processing jobs (CreateProcessingJob and its lifecycle, run under SageMaker's processing
container contract) and the data-preparation library, :mod:`openmaker.processing.transforms`."""
