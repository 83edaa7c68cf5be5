"""The edge role (Expressway-E): SIP over mutual TLS between the cloud and the connector.

- ``zones``: ``Zone`` values (DNS zone = the cloud, traversal zone = the connector), presets;
- ``service``: ``ZoneStore``, the zones in the edge's node database (``edge_zones``);
- ``identity``: which zone a TLS peer belongs to, and the one-line reason when none;
- ``relay``: the stateless proxy's decisions (RFC 3261 §16.11), no sockets;
- ``server``: ``EdgeServer``, the asyncio listeners and the admission of peers;
- ``dispatch``: ``Dispatcher``, the admitted connections and the relaying between them;
- ``connection``, ``settings``, ``metrics``: its plumbing, bounds and Prometheus counters;
- ``errors``: ``EdgeError`` and its subclasses.

The edge imports nothing from the cloud or connector roles; it meets them over TLS only.
"""
