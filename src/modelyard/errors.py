"""The exception tree of modelyard.

Every error carries a stable ``code``; ``serving`` maps codes to HTTP statuses
in one table, so domain code never speaks HTTP::

    ModelyardError                      code
    ├── ConfigurationError              configuration_invalid
    ├── StoreError                      store_error
    │   ├── RejectedWriteError          store_rejected_write
    │   ├── IntegrityError              artifact_integrity
    │   ├── UnsafePathError             artifact_path_unsafe
    │   └── ArtifactNotFoundError       artifact_not_found
    ├── NotFoundError                   not_found
    │   ├── RunNotFoundError            run_not_found
    │   ├── ModelNotFoundError          model_not_found
    │   ├── VersionNotFoundError        version_not_found
    │   ├── AliasNotFoundError          alias_not_found
    │   └── FeatureViewNotFoundError    feature_view_not_found
    ├── ConflictError                   conflict
    │   └── LeaseLostError              lease_lost
    ├── RegistryError                   registry_error
    │   ├── UntrustedFormatError        untrusted_format
    │   └── UnsupportedModelError       unsupported_model
    ├── PipelineError                   pipeline_error
    │   └── StepFailedError             step_failed
    ├── PlatformError                   platform_error
    ├── ValidationError                 invalid_input
    │   ├── MalformedRequestError       malformed_request
    │   │   └── HostNotAllowedError     host_not_allowed
    │   ├── UnsupportedMediaTypeError   unsupported_media_type
    │   └── PayloadTooLargeError        payload_too_large
    └── ServingError                    serving_error
        ├── UnauthorizedError           unauthorized
        ├── MethodNotAllowedError       method_not_allowed
        ├── ModelNotReadyError          model_not_ready
        ├── OverloadedError             overloaded
        ├── DeadlineExceededError       deadline_exceeded
        └── ModelFailedError            model_failed

``NotFoundError`` has ``RouteNotFoundError`` (``route_not_found``) too: a path no
endpoint serves. ``serving.http.status`` maps each code to its HTTP status.
"""

from __future__ import annotations

__all__ = [
    "AliasNotFoundError",
    "ArtifactNotFoundError",
    "ConfigurationError",
    "ConflictError",
    "DeadlineExceededError",
    "FeatureViewNotFoundError",
    "HostNotAllowedError",
    "IntegrityError",
    "LeaseLostError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "ModelFailedError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelyardError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PipelineError",
    "PlatformError",
    "RegistryError",
    "RejectedWriteError",
    "RouteNotFoundError",
    "RunNotFoundError",
    "ServingError",
    "StepFailedError",
    "StoreError",
    "UnauthorizedError",
    "UnsafePathError",
    "UnsupportedMediaTypeError",
    "UnsupportedModelError",
    "UntrustedFormatError",
    "ValidationError",
    "VersionNotFoundError",
]


class ModelyardError(Exception):
    """Root of every error modelyard raises on purpose."""

    code = "modelyard_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def detail(self) -> str:
        """What a log line keeps: the message, and whatever a client must not be shown."""
        return self.message


class ConfigurationError(ModelyardError):
    code = "configuration_invalid"


class StoreError(ModelyardError):
    code = "store_error"


class RejectedWriteError(StoreError):
    """The database refused a write for its content: a key already taken, a value its
    column cannot hold. Retrying the same write fails the same way."""

    code = "store_rejected_write"


class IntegrityError(StoreError):
    """A stored blob does not match its recorded hash (tampered or truncated)."""

    code = "artifact_integrity"


class UnsafePathError(StoreError):
    """A key or path would reach outside the artifact root."""

    code = "artifact_path_unsafe"


class ArtifactNotFoundError(StoreError):
    code = "artifact_not_found"


class NotFoundError(ModelyardError):
    code = "not_found"


class RunNotFoundError(NotFoundError):
    code = "run_not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class AliasNotFoundError(NotFoundError):
    code = "alias_not_found"


class FeatureViewNotFoundError(NotFoundError):
    """No feature view (or feature of one, on-demand feature or entity) of that name."""

    code = "feature_view_not_found"


class RouteNotFoundError(NotFoundError):
    code = "route_not_found"


class ConflictError(ModelyardError):
    """The request contradicts the current state (a duplicate, a busy resource)."""

    code = "conflict"


class LeaseLostError(ConflictError):
    """A write made under a lease (the runner's leadership) found that this process no
    longer holds it: another took over, so the write was not made."""

    code = "lease_lost"


class RegistryError(ModelyardError):
    code = "registry_error"


class UntrustedFormatError(RegistryError):
    """A pickle-based artifact was asked to load without ``trusted=True``."""

    code = "untrusted_format"


class UnsupportedModelError(RegistryError):
    code = "unsupported_model"


class PipelineError(ModelyardError):
    """A training pipeline or a retrain could not finish."""

    code = "pipeline_error"


class StepFailedError(PipelineError):
    """A pipeline step raised; ``step`` names it, the message carries its error."""

    code = "step_failed"

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step


class PlatformError(ModelyardError):
    """A platform (a Kubernetes API server, a manifests directory) refused or missed a push."""

    code = "platform_error"


class ValidationError(ModelyardError):
    """Input that does not match what was declared; the message names the field."""

    code = "invalid_input"


class MalformedRequestError(ValidationError):
    """The body is not JSON, or not shaped like the protocol's request object."""

    code = "malformed_request"


class HostNotAllowedError(MalformedRequestError):
    """A request whose ``Host`` header is not one the server answers for (DNS rebinding)."""

    code = "host_not_allowed"


class UnsupportedMediaTypeError(ValidationError):
    """A body that does not declare a JSON (or binary tensor) content type."""

    code = "unsupported_media_type"


class PayloadTooLargeError(ValidationError):
    code = "payload_too_large"


class ServingError(ModelyardError):
    code = "serving_error"


class ModelNotReadyError(ServingError):
    code = "model_not_ready"


class OverloadedError(ServingError):
    code = "overloaded"


class DeadlineExceededError(ServingError):
    code = "deadline_exceeded"


class UnauthorizedError(ServingError):
    code = "unauthorized"


class MethodNotAllowedError(ServingError):
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class ModelFailedError(ServingError):
    """The model itself raised while predicting a batch that passed validation.

    ``message`` is what the client sees; ``detail`` (the model's own exception text,
    which may hold paths or data) goes to the server's log only."""

    code = "model_failed"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self._detail = detail

    @property
    def detail(self) -> str:
        return f"{self.message}: {self._detail}" if self._detail else self.message
