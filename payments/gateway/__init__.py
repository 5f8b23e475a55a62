"""The protocol client for the MtGox HTTP API v1 merchant protocol.

Nothing in this package touches the database: it signs, sends, parses and
raises. The nonce source and the cache are handed in by the caller.
"""
