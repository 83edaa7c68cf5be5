"""The connector role: admin web UI and JSON API, and registration to the cloud.

- ``app``: ``create_app(settings)``, the FastAPI application wired in one place;
- ``settings``: ``ConnectorSettings``;
- ``services``: what routes depend on (``ConnectorServices``, injected with ``Depends``);
- ``flow``: the registration client, a generator that yields ``httpx.Request`` and receives
  ``httpx.Response`` (httpx's ``_auth.py`` shape), driven over an injected transport;
- ``cloudlink``: TLS to the cloud (bootstrap anchors for registration, platform after);
- ``registration``: start, callback, deregistration, status (``RegistrationService``);
- ``credentials``: the stored registration and the private key in the vault;
- ``trust_views`` / ``registration_views``: pages and the JSON API;
- ``errors``: ``ConnectorError`` and its subclasses.
"""
