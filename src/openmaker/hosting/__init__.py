"""Hosting: models, endpoint configs, endpoints and the model servers behind them.

Other areas use the service functions :func:`~openmaker.hosting.models.get_model` and
:func:`~openmaker.hosting.endpoint_configs.get_endpoint_config`, never the stored records.
"""
