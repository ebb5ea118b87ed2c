"""`AcceptedDocument`: one per `document_id` ever accepted, saved with the command it carried.

Its id derives from the `document_id`, so the unique (stream, version) key of the store makes
a `document_id` acceptable once, atomically with the command's effects. A re-submission of
the same canonical bytes finds it and answers as before; other bytes are refused.
"""

from __future__ import annotations

import hashlib
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

DOCUMENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:epoa:document")


def digest_of(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


class AcceptedDocument(Aggregate):
    class Accepted(Aggregate.Created):
        document_id: str
        document_type: str
        digest: str
        poa_id: UUID | None

    @staticmethod
    def create_id(document_id: str) -> UUID:
        return uuid5(DOCUMENT_NAMESPACE, document_id)

    @event(Accepted)
    def __init__(
        self, document_id: str, document_type: str, digest: str, poa_id: UUID | None
    ) -> None:
        self.document_id = document_id
        self.document_type = document_type
        self.digest = digest
        self.poa_id = poa_id
