"""The project's own exceptions for third-party failures, translated at the boundary."""


class SettleError(Exception):
    """Base of Settle's errors."""


class ChainUnavailable(SettleError):
    """The chain node did not answer; retryable."""
