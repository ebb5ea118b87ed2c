"""Public reference data: the rights catalogue, the seal keys; and the person directory."""

from __future__ import annotations

from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends

from api.deps import ServicesDep, role
from api.schemas import PersonPublic, RightPublic, SealKeysPublic
from domain.documents import parse_iin
from domain.errors import NotFoundError
from domain.rights import CATALOGUE

router = APIRouter()
PersonReader = Annotated[str, Depends(role("portal", "court"))]


@router.get(
    "/v1/rights",
    tags=["reference"],
    response_model=None,
    responses={200: {"model": list[RightPublic], "description": "the catalogue"}},
)
def rights() -> list[dict[str, Any]]:
    return [right.as_public() for right in CATALOGUE]


@router.get(
    "/v1/audit/keys",
    tags=["audit"],
    response_model=None,
    responses={200: {"model": SealKeysPublic, "description": "current and retired keys"}},
)
def seal_keys(services: ServicesDep) -> dict[str, Any]:
    mapper = services.registry.sealed_mapper
    keys = [
        {
            "key_id": key_id.hex(),
            "algorithm": "Ed25519",
            "public_key_pem": key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
            "current": key_id == services.registry.seal_key.key_id,
        }
        for key_id, key in mapper.public_keys.items()
    ]
    return {"keys": keys}


@router.get("/v1/persons/{iin}", tags=["persons"])
def person(iin: str, services: ServicesDep, _: PersonReader) -> PersonPublic:
    parse_iin(iin, "iin")
    found = services.read_models.find_person(iin)
    if found is None:
        raise NotFoundError(f"person {iin} is not in the directory")
    return PersonPublic(**found)
