"""A gateway emulator that speaks the MtGox HTTP API v1 merchant protocol.

It is a separate party: the service talks to it only over HTTP, exactly as
it would talk to the real gateway.
"""
