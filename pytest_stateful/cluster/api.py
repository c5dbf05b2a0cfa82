"""The boundary to the Kubernetes API: every call goes through `call`, which maps failures to the
typed errors of errors.py once, and retries idempotent calls on transient failures.

Transient: no answer (connection refused or reset while the API server restarts),
429 and 5xx. Retries are bounded (RETRY_SECONDS) and reported through
`on_retry`, which the workload turns into a Retry entry of the timeline: a
run that needed retries shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import tenacity
import urllib3
from kubernetes.client import ApiException

from pytest_stateful.errors import ApiError, ServerError, TooManyRequests, api_error

T = TypeVar("T")
# How long an idempotent call is retried while the API server does not answer (a restart takes a few seconds).
RETRY_SECONDS = 12.0
# (connect, read) seconds for one request: a stuck API server must not hang a step forever.
REQUEST_TIMEOUT = (5.0, 15.0)
# Cleanup must end even when the API server does not answer: (connect, read) seconds per request.
CLEANUP_TIMEOUT = (3.0, 10.0)

# What the client raises when the server cannot be reached or answers garbage.
CLIENT_FAILURES: tuple[type[BaseException], ...] = (ApiException, urllib3.exceptions.HTTPError, OSError)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, ServerError | TooManyRequests)


def call(
    doing: str,
    fn: Callable[..., T],
    *args: Any,
    retry: bool = False,
    on_retry: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> T:
    """fn(*args, **kwargs); a failure becomes an ApiError whose message starts with `doing`.

    retry=True only for idempotent calls (reads, patches to a fixed value, deletes).
    """

    if getattr(fn, "__module__", "").startswith("kubernetes.client.api") and "_request_timeout" not in kwargs:
        kwargs["_request_timeout"] = REQUEST_TIMEOUT

    def once() -> T:
        try:
            return fn(*args, **kwargs)
        except CLIENT_FAILURES as exc:
            raise api_error(exc, doing) from exc

    if not retry:
        return once()

    def before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        if on_retry is not None and failure is not None:
            on_retry(f"{failure} (attempt {state.attempt_number}, retrying)")

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient),
        stop=tenacity.stop_after_delay(RETRY_SECONDS),
        wait=tenacity.wait_exponential(multiplier=0.25, max=4.0),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(once)


__all__ = ["CLIENT_FAILURES", "RETRY_SECONDS", "ApiError", "call"]
