"""Production settings are checked before a process starts: every missing or unfit setting
is named, with what to do, and `epoa serve` exits with status 2 instead of serving."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from domain.seal import SealKey
from domain.trust import TrustStore
from epoa.checks import NEEDS, check_production
from epoa.demo_keys import make_demo
from epoa.settings import Settings, redacted
from epoa.wiring import SettingsError, read_crl
from tests.support.people import People
from tests.support.pki import hierarchy, make_cert
from tests.test_eds_certificates import NOW, crl

EPOA = str(Path(sys.executable).with_name("epoa"))
POSTGRES = "postgresql://epoa_service@db.internal:5432/epoa"
GOOD_KEYS = {f"{role}-{'k' * 30}": role for role in ("portal", "court", "auditor", "admin")}


@pytest.fixture
def fit(tmp_path: Path, people: People) -> Settings:
    """Production settings that pass every check."""
    seal = tmp_path / "seal.pem"
    seal.write_bytes(SealKey.generate().to_pem())
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(GOOD_KEYS))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(people.ca.root.cert.public_bytes(serialization.Encoding.PEM))
    return Settings(
        env="production",
        database_url=POSTGRES,
        seal_key=seal,
        api_keys=keys,
        trusted_ca=ca,
        kafka_bootstrap="kafka:9092",
    )


def problems_of(settings: Settings, role: str = "serve") -> str:
    with pytest.raises(SettingsError) as raised:
        check_production(settings, NEEDS[role])
    return str(raised.value)


def test_fit_production_settings_pass_for_every_process_role(fit: Settings) -> None:
    for role in NEEDS:
        check_production(fit, NEEDS[role])


def test_development_checks_nothing_because_it_makes_what_is_missing() -> None:
    check_production(Settings(), NEEDS["serve"])


def test_production_names_every_missing_setting_at_once(fit: Settings) -> None:
    bare = fit.model_copy(update={"seal_key": None, "api_keys": None, "trusted_ca": None})
    message = problems_of(bare)
    for setting in ("EPOA_SEAL_KEY is required", "EPOA_API_KEYS is required", "EPOA_TRUSTED_CA"):
        assert setting in message


def test_production_refuses_sqlite(fit: Settings) -> None:
    message = problems_of(fit.model_copy(update={"database_url": "sqlite:///var/e.sqlite"}))
    assert "SQLite, which is refused in production" in message
    assert "postgresql://" in message


def test_production_refuses_a_development_api_key_without_printing_it(
    fit: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "dev-keys.json"
    keys.write_text(json.dumps({**GOOD_KEYS, "dev-court-abcdefghijklmnopqrstuvwxyz": "court"}))
    message = problems_of(fit.model_copy(update={"api_keys": keys}))
    assert "key #5 (role 'court') is a development key" in message
    assert "abcdefghijklmnop" not in message


def test_production_refuses_an_api_key_shorter_than_24_characters(
    fit: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "short.json"
    keys.write_text(json.dumps({"s3cr3t-but-short": "portal"}))
    message = problems_of(fit.model_copy(update={"api_keys": keys}))
    assert "16 characters long, fewer than 24" in message
    assert "s3cr3t" not in message


def test_production_refuses_api_keys_that_are_not_a_json_object_of_roles(
    fit: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "roles.json"
    keys.write_text(json.dumps({"x" * 32: "superuser"}))
    assert "unknown role" in problems_of(fit.model_copy(update={"api_keys": keys}))
    keys.write_text("[1, 2]")
    assert "non-empty JSON object" in problems_of(fit.model_copy(update={"api_keys": keys}))


def test_production_refuses_an_api_key_given_twice_without_printing_it(
    fit: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "twice.json"
    first = next(iter(GOOD_KEYS))
    keys.write_text(json.dumps(GOOD_KEYS)[:-1] + f', "{first}": "admin"}}')
    message = problems_of(fit.model_copy(update={"api_keys": keys}))
    assert f"EPOA_API_KEYS={keys}: key #5 repeats key #1" in message
    assert first not in message


def test_production_refuses_the_demo_ca(fit: Settings, tmp_path: Path) -> None:
    demo = make_demo(tmp_path / "demo")
    message = problems_of(fit.model_copy(update={"trusted_ca": demo.ca_pem}))
    assert "holds the demo CA" in message and "EPOA DEMO" in message


def test_production_refuses_a_seal_key_that_is_missing_or_not_ed25519(
    fit: Settings, tmp_path: Path
) -> None:
    missing = fit.model_copy(update={"seal_key": tmp_path / "nowhere.pem"})
    assert "EPOA_SEAL_KEY=" in problems_of(missing)
    assert fit.trusted_ca is not None
    not_a_key = fit.model_copy(update={"seal_key": fit.trusted_ca})
    assert "not a readable unencrypted PEM private key" in problems_of(not_a_key)


def test_the_consumer_needs_a_broker_and_the_projector_does_not(fit: Settings) -> None:
    no_kafka = fit.model_copy(update={"kafka_bootstrap": None})
    assert "EPOA_KAFKA_BOOTSTRAP is required" in problems_of(no_kafka, "consume")
    check_production(no_kafka, NEEDS["project"])


def test_a_password_file_completes_the_database_url_and_is_redacted_in_output(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "password"
    secret.write_text("p@ss/word\n")
    settings = Settings(database_url=POSTGRES, database_password_file=secret)
    assert settings.database_url == "postgresql://epoa_service:p%40ss%2Fword@db.internal:5432/epoa"
    assert "p%40ss" not in redacted(settings.database_url)
    assert redacted(settings.database_url).startswith("postgresql://epoa_service:***@db.internal")


def run_epoa(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    return subprocess.run(
        [EPOA, *args], env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_epoa_serve_in_production_without_settings_exits_2_with_the_message(
    tmp_path: Path,
) -> None:
    done = run_epoa("serve", env={"EPOA_ENV": "production"}, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "epoa: bad settings: EPOA_ENV=production refuses to start" in done.stderr
    assert "EPOA_SEAL_KEY is required" in done.stderr
    assert "SQLite, which is refused in production" in done.stderr
    assert not (tmp_path / "var").exists(), "nothing is made in production"


def test_epoa_serve_in_production_with_the_demo_ca_exits_2(fit: Settings, tmp_path: Path) -> None:
    demo = make_demo(tmp_path / "demo")
    env = {
        "EPOA_ENV": "production",
        "EPOA_DATABASE_URL": POSTGRES,
        "EPOA_SEAL_KEY": str(fit.seal_key),
        "EPOA_API_KEYS": str(fit.api_keys),
        "EPOA_TRUSTED_CA": str(demo.ca_pem),
    }
    done = run_epoa("serve", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "holds the demo CA" in done.stderr


def test_an_auditor_verifies_an_export_with_public_keys_only_and_no_database(
    fit: Settings, tmp_path: Path
) -> None:
    """In production `audit verify --export` needs the trust bundle, not the service's
    private seal key nor its database; verifying the store needs both."""
    env = {"EPOA_ENV": "production", "EPOA_TRUSTED_CA": str(fit.trusted_ca)}
    missing = tmp_path / "none.jsonl"
    export = run_epoa("audit", "verify", "--export", str(missing), env=env, cwd=tmp_path)
    assert export.returncode == 2, export.stderr  # an input named wrong: no verdict
    assert "refuses to start" not in export.stderr
    assert f"--export {missing}: no readable file there" in export.stderr
    store = run_epoa("audit", "verify", env=env, cwd=tmp_path)
    assert store.returncode == 2
    assert "EPOA_SEAL_KEY is required" in store.stderr and "SQLite" in store.stderr


def test_a_malformed_setting_exits_2_naming_it(tmp_path: Path) -> None:
    done = run_epoa("audit", "verify", env={"EPOA_LOG_LEVEL": "chatty"}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("epoa: bad settings: EPOA_LOG_LEVEL: Input should be")


def test_dead_letters_go_beside_the_case_events_topic_unless_named() -> None:
    assert Settings().case_events_dlq_topic == "court.case-events.dlq"
    moved = Settings(case_events_topic="courts.almaty.case-events")
    assert moved.case_events_dlq_topic == "courts.almaty.case-events.dlq"
    named = Settings(case_events_topic="courts.events", case_events_dlq_topic="ops.poison")
    assert named.case_events_dlq_topic == "ops.poison"


def test_epoa_serve_whose_store_does_not_answer_ends_with_one_line_not_a_failed_server(
    tmp_path: Path,
) -> None:
    env = {"EPOA_DATABASE_URL": "postgresql://epoa_service@127.0.0.1:1/epoa"}
    done = run_epoa("serve", "--port", "18771", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("epoa: the store refused: ") and "port 1 failed" in last


def test_a_crl_file_that_is_no_crl_stops_serve_and_consume_naming_that_file(
    tmp_path: Path,
) -> None:
    good, garbage = tmp_path / "good.crl", tmp_path / "revoked.crl"
    pki = hierarchy()
    good.write_bytes(crl(pki.root, {}))
    garbage.write_bytes(b"garbage\n")
    demo = make_demo(tmp_path / "demo")
    env = {
        "EPOA_CRL_FILES": f"{good},{garbage}",
        "EPOA_TRUSTED_CA": str(demo.ca_pem),
        "EPOA_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    for command in (("serve", "--port", "18772"), ("consume",)):
        done = run_epoa(*command, env=env, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.splitlines()[-1] == (
            f"epoa: bad settings: EPOA_CRL_FILES: {garbage} is not a CRL (PEM or DER)"
        )


def _scoped_crl(extension: x509.ExtensionType) -> bytes:
    """A CRL of the test root with one more extension."""
    pki = hierarchy()
    full = x509.load_der_x509_crl(crl(pki.root, {}))
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(full.issuer)
        .last_update(full.last_update_utc)
        .next_update(full.next_update_utc or full.last_update_utc)
        .add_extension(extension, critical=True)
    )
    return builder.sign(pki.root.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _point(**scope: object) -> x509.IssuingDistributionPoint:
    fields: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    return x509.IssuingDistributionPoint(**(fields | scope))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extension", "words"),
    [
        (x509.DeltaCRLIndicator(7), "is a delta CRL"),
        (_point(only_contains_attribute_certs=True), "is a CRL of attribute certificates only"),
        (
            _point(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})),
            "is a CRL of some revocation reasons only",
        ),
        (_point(indirect_crl=True), "is an indirect CRL"),
        (
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            "is a CRL with a critical extension not supported .1.3.6.1.4.1.99999.1.",
        ),
    ],
)
def test_a_crl_that_lists_only_part_of_its_issuer_s_revocations_is_a_bad_setting(
    tmp_path: Path, extension: x509.ExtensionType, words: str
) -> None:
    """Read as the whole list, it would record `crl:not-revoked` for what it says nothing of."""
    path = tmp_path / "part.crl"
    path.write_bytes(_scoped_crl(extension))
    trust = TrustStore([hierarchy().root.cert])
    with pytest.raises(SettingsError, match=f"EPOA_CRL_FILES: {path} {words}.*give its full CRL"):
        read_crl(path, trust)
    for complete_for_its_kind in ("only_contains_user_certs", "only_contains_ca_certs"):
        path.write_bytes(_scoped_crl(_point(**{complete_for_its_kind: True})))
        assert read_crl(path, trust) == path.read_bytes()  # read for that kind of certificate


def test_a_crl_of_a_trusted_ca_signed_with_a_key_no_ca_of_that_name_holds_is_a_bad_setting(
    tmp_path: Path,
) -> None:
    """A CA that moved to a new key signs its CRL with it, while the certificates it issued
    before chain to its old key: at use, the CRL would never verify, and every signer of
    that CA would be recorded `crl:none-for-issuer` with nothing said."""
    pki = hierarchy()
    rekeyed = make_cert(pki.root.cert.subject, key_type="rsa", ca=True, key_label="root-rekeyed")
    path = tmp_path / "rekeyed.crl"
    path.write_bytes(crl(pki.root, {12345: NOW - timedelta(days=1)}, signed_by=rekeyed))
    trust = TrustStore([pki.root.cert])
    name = re.escape(pki.root.cert.subject.rfc4514_string())
    words = f"is a CRL of {name} whose signature verifies with the key of none of the trusted CAs"
    with pytest.raises(SettingsError, match=f"EPOA_CRL_FILES: {path} {words}.*EPOA_TRUSTED_CA"):
        read_crl(path, trust)
    both = TrustStore([pki.root.cert, rekeyed.cert])
    assert read_crl(path, both) == path.read_bytes()  # the new key is trusted too
    forged = tmp_path / "intermediate.crl"
    forged.write_bytes(crl(pki.intermediate, {}, signed_by=rekeyed))
    assert read_crl(forged, trust) == forged.read_bytes()  # its CA is met in a CMS, not here


def test_a_crl_signed_with_a_trusted_ca_s_new_key_stops_serve_naming_that_file(
    tmp_path: Path,
) -> None:
    pki = hierarchy()
    rekeyed = make_cert(pki.root.cert.subject, key_type="rsa", ca=True, key_label="root-rekeyed")
    path, ca = tmp_path / "root.crl", tmp_path / "ca.pem"
    path.write_bytes(crl(pki.root, {}, signed_by=rekeyed))
    ca.write_bytes(pki.root.pem)
    env = {"EPOA_CRL_FILES": str(path), "EPOA_TRUSTED_CA": str(ca)}
    done = run_epoa("serve", "--port", "18775", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"epoa: bad settings: EPOA_CRL_FILES: {path} is a CRL of "
        f"{pki.root.cert.subject.rfc4514_string()} whose signature verifies with the key of "
        "none of the trusted CAs of that name"
    )


def test_a_crl_file_that_cannot_be_read_is_named_with_its_setting(tmp_path: Path) -> None:
    missing = tmp_path / "missing.crl"
    demo = make_demo(tmp_path / "demo")
    env = {"EPOA_CRL_FILES": str(missing), "EPOA_TRUSTED_CA": str(demo.ca_pem)}
    done = run_epoa("serve", "--port", "18773", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"epoa: bad settings: EPOA_CRL_FILES: {missing} cannot be read: No such file or directory"
    )


def test_a_trust_bundle_that_holds_no_certificate_is_named_with_its_setting(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"garbage\n")
    done = run_epoa("serve", "--port", "18774", env={"EPOA_TRUSTED_CA": str(bundle)}, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"epoa: bad settings: EPOA_TRUSTED_CA: {bundle} is not a PEM bundle of CA certificates"
    )


def test_epoa_project_as_a_role_the_store_does_not_know_ends_with_one_line(
    tmp_path: Path,
) -> None:
    env = {"EPOA_DATABASE_URL": "postgresql://epoa_no_such_role@127.0.0.1:5432/epoa_test"}
    done = run_epoa("project", "--once", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("epoa: the store refused: ") and "epoa_no_such_role" in last


def test_a_retired_keys_file_holding_several_keys_gives_every_one(tmp_path: Path) -> None:
    """Concatenated PEMs were read as their first key: the records of the others were then
    sealed by "unknown keys", 500s in the API and findings in every audit."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from epoa.audit_proofs import pem_of
    from epoa.wiring import load_retired_keys

    first, second = SealKey.generate(), SealKey.generate()
    bundle = tmp_path / "retired.pem"
    bundle.write_text(pem_of(first.public_key) + pem_of(second.public_key))
    settings = Settings(retired_seal_keys=[bundle], var_dir=tmp_path)
    read = [k.public_bytes_raw() for k in load_retired_keys(settings)]
    assert read == [first.public_key.public_bytes_raw(), second.public_key.public_bytes_raw()]
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    bundle.write_text(
        pem_of(first.public_key)
        + other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    )
    with pytest.raises(SettingsError, match=r"key #2: not an Ed25519 public key"):
        load_retired_keys(settings)


def test_serve_warns_of_a_crl_past_its_next_update_once(tmp_path: Path) -> None:
    """The trust bundle and the CRLs were read before the banner and again at start-up, so
    each warning an operator alerts on came twice."""
    import socket
    import time
    import urllib.request

    pki = hierarchy()
    (tmp_path / "ca.pem").write_bytes(pki.root.pem)
    (tmp_path / "root.crl").write_bytes(crl(pki.root, {}, next_update=NOW - timedelta(days=1)))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EPOA_")}
    env = clean | {"EPOA_TRUSTED_CA": "ca.pem", "EPOA_CRL_FILES": "root.crl"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [EPOA, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
    warnings = [line for line in log.read_text().splitlines() if "is out of date since" in line]
    assert len(warnings) == 1, log.read_text()
    assert "replace it in EPOA_CRL_FILES and restart" in warnings[0]


def test_a_consumer_metrics_port_taken_is_a_bad_setting_naming_it(tmp_path: Path) -> None:
    """It said only `epoa: Address already in use`, naming neither the setting nor the port."""
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"EPOA_KAFKA_BOOTSTRAP": "127.0.0.1:1", "EPOA_CONSUMER_METRICS_PORT": str(port)}
        done = run_epoa("consume", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"epoa: bad settings: EPOA_CONSUMER_METRICS_PORT={port}: cannot listen on "
        f"0.0.0.0:{port}: Address already in use"
    ), done.stderr
