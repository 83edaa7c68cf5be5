"""The Microsoft Graph calendar backend, for Exchange Online (no EWS, no impersonation).

``GraphBackend.from_settings(settings, ssl_context)`` is the factory the connector's
calendar configuration calls; ``GraphSettings`` holds the tenant, the app registration and
its credential (a vault ``Secret``); ``check_connection(settings, ssl_context)`` is the
connection test a configuration page runs before saving.
"""

from hybridge.calendar.graph.backend import GraphBackend
from hybridge.calendar.graph.check import GraphCheckResult, check_connection
from hybridge.calendar.graph.settings import ClientCertificate, GraphSettings

__all__ = [
    "ClientCertificate",
    "GraphBackend",
    "GraphCheckResult",
    "GraphSettings",
    "check_connection",
]
