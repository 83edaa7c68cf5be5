"""Fixtures of the connector unit tests (defined in ``connector_app``, shared by name)."""

from connector_app import app, bootstrap_ca

__all__ = ["app", "bootstrap_ca"]
