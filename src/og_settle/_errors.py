"""The two kinds of failure og_settle reports: the caller's mistake, and a bug in this library."""

from __future__ import annotations

__all__ = ["InvalidInput", "InvariantViolation", "ToolchainError"]


class InvalidInput(ValueError):
    """The caller passed something malformed; the message names the field and what was wrong."""


class InvariantViolation(AssertionError):
    """og_settle broke one of its own guarantees (for example, a proof failed self-verification).

    This is a bug in og_settle, never the caller's fault: please report it.
    """


class ToolchainError(RuntimeError):
    """A required external tool (Node, solc-js, anvil) is missing, the wrong version, or failed."""
