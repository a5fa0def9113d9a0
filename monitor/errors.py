"""The exception tree. Every error driftmon raises on purpose is a `DriftmonError`.

    DriftmonError
    ├── ConfigError          bad settings: names the field and where it came from; fail at start
    ├── InputError           a file or value a user handed us is unreadable or malformed
    │   └── BaselineError    a baseline document is missing, invalid, or does not fit the data
    └── ServiceError         an external service (Redis, Kafka, an alert sink) failed;
        └── RedisUnavailable  recoverable: retry with backoff, readiness goes false

Invalid *events* are not exceptions: the decoder returns them with a reason so the
consumer loop never stops (see `monitor.decode`). Library exceptions are mapped to
this tree at the adapters; the CLI turns any `DriftmonError` into one line and exit 2.
"""


class DriftmonError(Exception):
    """Base of every error driftmon raises on purpose."""


class ConfigError(DriftmonError):
    """Invalid configuration; the message names the field and its source."""


class InputError(DriftmonError):
    """A user-supplied file or value cannot be read or is malformed."""


class BaselineError(InputError):
    """A baseline document is missing, invalid, or inconsistent with the data."""


class ServiceError(DriftmonError):
    """An external service failed."""


class RedisUnavailable(ServiceError):
    """Redis did not answer; callers retry with backoff and report not-ready."""
