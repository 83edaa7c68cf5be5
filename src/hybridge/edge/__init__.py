"""The edge role: SIP over mutual TLS between the cloud zone and the traversal zone."""
