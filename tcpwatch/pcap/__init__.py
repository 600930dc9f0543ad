"""Offline capture analysis: who reset each connection, what was retransmitted.

The per-packet work happens in the C extension `_pcapcore`; this package streams the file into
it, wraps its packed records with numpy and builds the event and connection tables.
"""
