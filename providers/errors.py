"""Errors of the data layer, each mapped once to a GraphQL `extensions.code`.

OneError
 ├── InvalidInputError        BAD_USER_INPUT   the request itself is wrong
 │    └── InvalidTransitionError               a lifecycle step that is not allowed
 ├── NotFoundError            NOT_FOUND        absent, or not visible to this organization
 ├── ForbiddenError           FORBIDDEN        visible, but not for this actor's role
 ├── UnauthenticatedError     UNAUTHENTICATED  no actor, or a token that fails checks
 ├── ConflictError            CONFLICT         a unique value that is already taken
 ├── RateLimitedError         RATE_LIMITED     too many requests from one actor;
 │                                             `retryAfter` says when
 ├── StoreBusyError           STORE_BUSY       the store could not take the write in time;
 │                                             `retryable`, nothing was written
 ├── StreamError                               a subscription that cannot go on
 │    ├── SubscriberTooSlowError  SUBSCRIBER_TOO_SLOW     fell too far behind its events
 │    ├── CursorExpiredError      CURSOR_EXPIRED          resumes from before the retention
 │    └── TooManySubscriptionsError TOO_MANY_SUBSCRIPTIONS over a connection's or org's cap
 └── ProviderError            PROVIDER_ERROR   an upstream failed; `retryable` says if
                                               trying again may help
"""

from __future__ import annotations

from typing import Any, ClassVar


class OneError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class InvalidInputError(OneError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None, **extensions: Any) -> None:
        if field is not None:
            extensions["field"] = field
        super().__init__(message, **extensions)


class InvalidTransitionError(InvalidInputError):
    pass


class NotFoundError(OneError):
    code = "NOT_FOUND"


class ForbiddenError(OneError):
    code = "FORBIDDEN"


class UnauthenticatedError(OneError):
    code = "UNAUTHENTICATED"


class ConflictError(OneError):
    code = "CONFLICT"


class QuotaExceededError(OneError):
    code = "QUOTA_EXCEEDED"


class RateLimitedError(OneError):
    code = "RATE_LIMITED"


class StoreBusyError(OneError):
    code = "STORE_BUSY"

    def __init__(self, message: str = "the store is busy; try again") -> None:
        super().__init__(message, retryable=True)


class StreamError(OneError):
    code = "STREAM_ERROR"


class SubscriberTooSlowError(StreamError):
    code = "SUBSCRIBER_TOO_SLOW"


class CursorExpiredError(StreamError):
    code = "CURSOR_EXPIRED"


class TooManySubscriptionsError(StreamError):
    code = "TOO_MANY_SUBSCRIPTIONS"


class ProviderError(OneError):
    code = "PROVIDER_ERROR"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, provider: str, retryable: bool | None = None, **extensions: Any
    ) -> None:
        retryable = self.default_retryable if retryable is None else retryable
        super().__init__(message, provider=provider, retryable=retryable, **extensions)
        self.provider = provider
        self.retryable = retryable


class ProviderUnavailableError(ProviderError):
    code = "PROVIDER_UNAVAILABLE"
    default_retryable = True


class ProviderAuthError(ProviderError):
    code = "PROVIDER_UNAUTHORIZED"


class ProviderRateLimitedError(ProviderError):
    code = "PROVIDER_RATE_LIMITED"
    default_retryable = True


class ProviderResponseError(ProviderError):
    code = "PROVIDER_BAD_RESPONSE"


class ProviderSecretError(ProviderError):
    code = "PROVIDER_CONFIG_UNREADABLE"
