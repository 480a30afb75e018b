"""Batch transform jobs: CreateTransformJob / DescribeTransformJob / StopTransformJob
(:mod:`openmaker.transform.service`), run by :mod:`openmaker.transform.runner` through
model servers started for the job."""
