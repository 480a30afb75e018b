"""Hyperparameter tuning jobs (CreateHyperParameterTuningJob and friends) on Optuna."""
