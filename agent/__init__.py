"""Enclave agent: dials the portal, keeps one multiplexed tunnel open and runs
environment operations on the local runtime. Never imports Django."""

__version__ = "0.1.0"
