"""Every error openmaker reports, with its AWS error code and HTTP status.

The server renders these in the wire format of the service that was called (a JSON
``{"__type", "message"}`` body for JSON services, an ``<Error>`` XML document for S3,
an ``<ErrorResponse>`` for query services); the SDK maps AWS error codes back to these
classes with :func:`error_class_for_code`. Hierarchy::

    AwsError                          code, HTTP status, message, extra fields
    ├── ClientError-style (4xx)       the caller can fix the request
    │   ├── ValidationException       bad input; the message names the member path
    │   ├── ResourceNotFound / ResourceInUse / ResourceLimitExceeded / ConflictException
    │   ├── SerializationException / UnknownOperationException / RequestEntityTooLarge
    │   ├── auth: MissingAuthenticationToken, InvalidSignatureException,
    │   │         UnrecognizedClientException, IncompleteSignatureException,
    │   │         SignatureDoesNotMatch, InvalidAccessKeyId, AccessDenied, RequestTimeTooSkewed
    │   └── S3: NoSuchBucket, NoSuchKey, InvalidRange, EntityTooSmall, ... (see below)
    │   └── Application Auto Scaling: ObjectNotFoundException
    │   └── SageMaker Runtime: ValidationError, ModelError (424, the container's answer),
    │                          ModelNotReadyException
    └── server-side (5xx)             InternalFailure, NotImplementedOperation, ServiceUnavailable
"""

from __future__ import annotations


class AwsError(Exception):
    """An error with an AWS error code; ``extra`` holds wire fields such as ``BucketName``."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str = "", **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = {k: v for k, v in extra.items() if v is not None}

    @property
    def sender_fault(self) -> bool:
        return self.status < 500

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


def _error(name: str, code: str, status: int, doc: str) -> type[AwsError]:
    return type(name, (AwsError,), {"code": code, "status": status, "__doc__": doc})


# --- generic / JSON services -------------------------------------------------------------
ValidationException = _error(
    "ValidationException", "ValidationException", 400, "Bad input; the message names the field."
)
ResourceNotFound = _error("ResourceNotFound", "ResourceNotFound", 400, "No such resource.")
ResourceInUse = _error(
    "ResourceInUse", "ResourceInUse", 400, "The name is taken or the resource is busy."
)
ResourceLimitExceeded = _error(
    "ResourceLimitExceeded", "ResourceLimitExceeded", 400, "A quota would be exceeded."
)
ConflictException = _error(
    "ConflictException", "ConflictException", 400, "A concurrent change conflicts."
)
SerializationException = _error(
    "SerializationException", "SerializationException", 400,
    "The request body could not be parsed.",
)
UnknownOperationException = _error(
    "UnknownOperationException", "UnknownOperationException", 400,
    "The request names no operation this service has.",
)
RequestEntityTooLarge = _error(
    "RequestEntityTooLarge", "RequestEntityTooLarge", 413, "The request body is too large."
)
UnsupportedMediaType = _error(
    "UnsupportedMediaType", "UnsupportedMediaTypeException", 415,
    "The request has a content type this service does not accept.",
)
InternalFailure = _error(
    "InternalFailure", "InternalFailure", 500, "An unexpected server-side failure."
)
NotImplementedOperation = _error(
    "NotImplementedOperation", "NotImplemented", 501,
    "The operation exists in the AWS API but openmaker does not implement it yet.",
)

# --- CloudWatch Logs ---------------------------------------------------------------------
ResourceAlreadyExistsException = _error(
    "ResourceAlreadyExistsException", "ResourceAlreadyExistsException", 400,
    "CloudWatch Logs: the log group or stream already exists.",
)
ResourceNotFoundException = _error(
    "ResourceNotFoundException", "ResourceNotFoundException", 400,
    "CloudWatch Logs: the log group or stream does not exist.",
)
InvalidParameterException = _error(
    "InvalidParameterException", "InvalidParameterException", 400,
    "CloudWatch Logs: a parameter is not valid.",
)

# --- Application Auto Scaling ------------------------------------------------------------
ObjectNotFoundException = _error(
    "ObjectNotFoundException", "ObjectNotFoundException", 400,
    "Application Auto Scaling: no such scalable target or scaling policy.",
)

# --- authentication ----------------------------------------------------------------------
MissingAuthenticationToken = _error(
    "MissingAuthenticationToken", "MissingAuthenticationTokenException", 403,
    "The request carries no signature.",
)
IncompleteSignatureException = _error(
    "IncompleteSignatureException", "IncompleteSignatureException", 400,
    "The Authorization header is malformed.",
)
InvalidSignatureException = _error(
    "InvalidSignatureException", "InvalidSignatureException", 403,
    "The signature does not match the request.",
)
UnrecognizedClientException = _error(
    "UnrecognizedClientException", "UnrecognizedClientException", 403,
    "The access key id is unknown.",
)
InvalidClientTokenId = _error(
    "InvalidClientTokenId", "InvalidClientTokenId", 403, "The access key id is unknown (query)."
)
SignatureExpired = _error(
    "SignatureExpired", "InvalidSignatureException", 403,
    "The request time is outside the allowed clock skew.",
)

# --- S3 ----------------------------------------------------------------------------------
AccessDenied = _error("AccessDenied", "AccessDenied", 403, "S3: the request is not allowed.")
SignatureDoesNotMatch = _error(
    "SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, "S3: the signature does not match."
)
InvalidAccessKeyId = _error(
    "InvalidAccessKeyId", "InvalidAccessKeyId", 403, "S3: the access key id is unknown."
)
AuthorizationHeaderMalformed = _error(
    "AuthorizationHeaderMalformed", "AuthorizationHeaderMalformed", 400,
    "S3: the Authorization header or presigned query is malformed.",
)
RequestTimeTooSkewed = _error(
    "RequestTimeTooSkewed", "RequestTimeTooSkewed", 403,
    "S3: the request time is too far from the server's.",
)
NoSuchBucket = _error("NoSuchBucket", "NoSuchBucket", 404, "S3: the bucket does not exist.")
NoSuchKey = _error("NoSuchKey", "NoSuchKey", 404, "S3: the key does not exist.")
NoSuchUpload = _error(
    "NoSuchUpload", "NoSuchUpload", 404, "S3: the multipart upload does not exist."
)
BucketAlreadyOwnedByYou = _error(
    "BucketAlreadyOwnedByYou", "BucketAlreadyOwnedByYou", 409, "S3: you already own it."
)
BucketAlreadyExists = _error(
    "BucketAlreadyExists", "BucketAlreadyExists", 409, "S3: the bucket name is taken."
)
BucketNotEmpty = _error(
    "BucketNotEmpty", "BucketNotEmpty", 409, "S3: the bucket still holds objects."
)
InvalidBucketName = _error(
    "InvalidBucketName", "InvalidBucketName", 400, "S3: the bucket name is not valid."
)
KeyTooLongError = _error("KeyTooLongError", "KeyTooLongError", 400, "S3: the key is too long.")
InvalidObjectName = _error(
    "InvalidObjectName", "InvalidArgument", 400,
    "S3: the key would escape its bucket or holds a forbidden character.",
)
InvalidArgument = _error("InvalidArgument", "InvalidArgument", 400, "S3: an argument is bad.")
InvalidRequest = _error("InvalidRequest", "InvalidRequest", 400, "S3: the request is bad.")
InvalidRange = _error(
    "InvalidRange", "InvalidRange", 416, "S3: the range is outside the object."
)
EntityTooSmall = _error(
    "EntityTooSmall", "EntityTooSmall", 400, "S3: a part is below the minimum size."
)
EntityTooLarge = _error(
    "EntityTooLarge", "EntityTooLarge", 400, "S3: the object is above the maximum size."
)
InvalidPart = _error("InvalidPart", "InvalidPart", 400, "S3: a listed part is missing or wrong.")
InvalidPartOrder = _error(
    "InvalidPartOrder", "InvalidPartOrder", 400, "S3: parts are not in ascending order."
)
MalformedXML = _error("MalformedXML", "MalformedXML", 400, "S3: the XML body is not valid.")
InvalidDigest = _error("InvalidDigest", "InvalidDigest", 400, "S3: Content-MD5 is malformed.")
BadDigest = _error("BadDigest", "BadDigest", 400, "S3: the body does not match its digest.")
ContentSHA256Mismatch = _error(
    "ContentSHA256Mismatch", "XAmzContentSHA256Mismatch", 400,
    "S3: the body does not match x-amz-content-sha256.",
)
MissingContentLength = _error(
    "MissingContentLength", "MissingContentLength", 411, "S3: Content-Length is required."
)
IncompleteBody = _error(
    "IncompleteBody", "IncompleteBody", 400, "S3: fewer bytes arrived than announced."
)
MethodNotAllowed = _error(
    "MethodNotAllowed", "MethodNotAllowed", 405, "S3: the method is not allowed here."
)
PreconditionFailed = _error(
    "PreconditionFailed", "PreconditionFailed", 412, "S3: a conditional header failed."
)
NotModified = _error("NotModified", "NotModified", 304, "S3: the object is unchanged.")
S3NotImplemented = _error(
    "S3NotImplemented", "NotImplemented", 501,
    "S3: a header or feature openmaker does not implement.",
)

# --- SageMaker Runtime -------------------------------------------------------------------
RuntimeValidationError = _error(
    "RuntimeValidationError", "ValidationError", 400,
    "SageMaker Runtime: bad input, an unknown endpoint or variant, or one not in service.",
)
ModelError = _error(
    "ModelError", "ModelError", 424,
    "SageMaker Runtime: the model container answered with an error; ``OriginalStatusCode`` "
    "and ``OriginalMessage`` carry its answer.",
)
ModelStreamError = _error(
    "ModelStreamError", "ModelStreamError", 400,
    "SageMaker Runtime: the model's response stream broke after it had started; its "
    "``ErrorCode`` is ``StreamBroken`` or ``ModelInvocationTimeExceeded``.",
)
ModelNotReadyException = _error(
    "ModelNotReadyException", "ModelNotReadyException", 429,
    "SageMaker Runtime: the target model is not loaded yet.",
)
ThrottlingException = _error(
    "ThrottlingException", "ThrottlingException", 400,
    "Too many requests at once (a serverless variant's MaxConcurrency).",
)
ServiceUnavailable = _error(
    "ServiceUnavailable", "ServiceUnavailable", 503,
    "The service (here: every instance of the variant) cannot take the request now.",
)


def _all_error_classes() -> list[type[AwsError]]:
    return [v for v in globals().values()
            if isinstance(v, type) and issubclass(v, AwsError) and v is not AwsError]


def error_class_for_code(code: str) -> type[AwsError]:
    """The error class for an AWS error code (``AwsError`` itself when none matches)."""
    for cls in _all_error_classes():
        if cls.code == code:
            return cls
    return AwsError


def from_client_error(exc: Exception) -> AwsError:
    """Turn a botocore ``ClientError`` into the matching openmaker error."""
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    code = error.get("Code", "InternalFailure")
    cls = error_class_for_code(code)
    extra = {k: v for k, v in error.items() if k not in ("Code", "Message")}
    result = cls(error.get("Message", str(exc)), **extra)
    if cls is AwsError:
        result.code = code
        result.status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return result
