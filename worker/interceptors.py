"""Cross-cutting policy for every activity the worker runs (local ones too): an error that no
retry can mend is reported as a non-retryable `ApplicationError`, whatever the retry policy of the
workflow that called it. Without this, a value PostgreSQL cannot store made a retry policy with no
attempt limit retry the same INSERT every ten seconds for ever."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.errors import non_retryable_of


class _NonRetryableDataErrors(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except Exception as error:
            translated = non_retryable_of(error)
            if translated is None:
                raise
            activity.logger.error("activity %s: %s (not retried)", activity.info().activity_type, translated.message)
            raise translated from error


class SettleInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _NonRetryableDataErrors(next)
