"""Runtimes: where environments actually live (``local`` processes, later ``kubernetes``)."""

from agent.runtimes.base import EventCallback, Runtime, RuntimeFailure

__all__ = ["EventCallback", "Runtime", "RuntimeFailure"]
