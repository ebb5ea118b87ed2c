"""The demo PKI signs documents the verifier accepts, as an NCA-issued key would."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from asn1crypto import cms

from domain.eds import TrustStore, Verifier
from epoa.demo_keys import DEMO_PASSWORD, DemoKeys, load_demo, make_demo, sign_document
from tests.support.pki import sample_document


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoKeys:
    return make_demo(tmp_path_factory.mktemp("demo"))


def test_every_demo_identity_signs_a_document_the_verifier_accepts(demo: DemoKeys) -> None:
    verifier = Verifier(TrustStore.from_path(demo.ca_pem))
    for identity in demo.identities:
        body = sign_document(sample_document(identity.id), identity.p12, DEMO_PASSWORD)

        evidence = verifier.verify(body["document"], body["signature"])

        assert (evidence.signer_id, evidence.signer_kind) == (identity.id, identity.kind)


def test_the_demo_has_a_principal_two_attorneys_and_a_court(demo: DemoKeys) -> None:
    assert demo.principal.kind == "person"
    assert len(demo.attorneys) == 2
    assert demo.court.kind == "organisation"
    assert len({identity.id for identity in demo.identities}) == 4


def test_people_json_lists_names_ids_and_files_and_reads_back(demo: DemoKeys) -> None:
    listing = json.loads((demo.directory / "people.json").read_text())

    assert listing["password"] == "demo"
    assert [entry["file"] for entry in listing["people"]] == [
        identity.p12.name for identity in demo.identities
    ]
    assert load_demo(demo.directory) == demo


def test_the_demo_signature_carries_signed_attributes_and_the_chain(demo: DemoKeys) -> None:
    body = sign_document(sample_document(demo.principal.id), demo.principal.p12, "demo")
    signed = cms.ContentInfo.load(base64.b64decode(body["signature"]))["content"]
    signer = signed["signer_infos"][0]

    assert signed["encap_content_info"]["content"].native is None
    assert [a["type"].native for a in signer["signed_attrs"]] == [
        "content_type",
        "signing_time",
        "message_digest",
    ]
    assert len(signed["certificates"]) == 2


def test_openssl_opens_a_demo_key_file_with_the_documented_password(demo: DemoKeys) -> None:
    result = subprocess.run(
        ["openssl", "pkcs12", "-in", str(demo.court.p12), "-passin", "pass:demo", "-nokeys"],
        check=True,
        capture_output=True,
        text=True,
    )

    assert f"BIN{demo.court.id}" in result.stdout


def test_a_demo_key_file_refuses_a_wrong_password(demo: DemoKeys) -> None:
    with pytest.raises(ValueError):
        sign_document(sample_document(demo.principal.id), demo.principal.p12, "wrong")
