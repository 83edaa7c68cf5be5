"""The Exchange Web Services backend (exchangelib, unmodified): settings and connection test."""

from hybridge.calendar.ews.check import test_connection
from hybridge.calendar.ews.result import CODES, ConnectionTestResult
from hybridge.calendar.ews.settings import AUTH_METHODS, EwsSettings

__all__ = ["AUTH_METHODS", "CODES", "ConnectionTestResult", "EwsSettings", "test_connection"]
