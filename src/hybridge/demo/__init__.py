"""The demo: a local PKI standing in for the public CAs, for ``hybridge demo`` and the tests."""
