"""Training jobs: the SageMaker container contract, input modes, distribution and metrics."""
