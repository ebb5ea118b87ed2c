"""Domain errors. Each carries the stable problem `kind` of the public contract.

The API maps `kind` to an RFC 9457 problem type; the consumer maps it to a DLQ reason.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    kind = "validation"
    status = 422

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInputError(DomainError):
    """The input breaks a rule of the contract (bad IIN, unknown right, ...)."""

    kind = "validation"
    status = 422


class MalformedJsonError(InvalidInputError):
    """The body is not one JSON object (unparseable, duplicate member names, an array...):
    over HTTP a 400, as nothing of it could be read; a well-formed object that breaks a
    rule is a 422."""

    status = 400


class InvalidSignatureError(DomainError):
    """The CMS is malformed, or does not verify over the document's canonical bytes."""

    kind = "invalid-signature"
    status = 422


class UntrustedCertificateError(DomainError):
    """The signer certificate does not chain to a trusted CA, was not valid, or is revoked."""

    kind = "untrusted-certificate"
    status = 422


class SignerMismatchError(DomainError):
    """The signature is sound, but the signer is not the actor the document names."""

    kind = "signer-mismatch"
    status = 403


class NotFoundError(DomainError):
    kind = "not-found"
    status = 404


class ConflictError(DomainError):
    """The command contradicts the current state (attorney named twice, ...)."""

    kind = "conflict"
    status = 409


class CaseConcludedError(DomainError):
    kind = "case-concluded"
    status = 409


class PoaNotActiveError(DomainError):
    kind = "poa-not-active"
    status = 409


class DuplicateDocumentError(DomainError):
    """A `document_id` already accepted arrives again with other content."""

    kind = "duplicate-document"
    status = 409


class StoreUnavailableError(DomainError):
    """The event store cannot be reached; the command changed nothing and may be retried."""

    kind = "unavailable"
    status = 503
