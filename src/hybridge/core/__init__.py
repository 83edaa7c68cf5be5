"""Pure logic: no sockets, no asyncio, no database, no web, no clock.

Everything here takes bytes and a time and returns a value. Nothing in ``core`` imports
anything from ``hybridge`` outside ``core``.
"""
