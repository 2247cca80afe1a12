"""Lighter-protocol simulator: REST and websocket on loopback over the core matching engine."""
