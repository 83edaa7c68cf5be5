"""Hybridge: a cloud service, an on-premises connector host and a SIP edge, connected securely."""

__version__ = "0.1.0"
