"""Throughput of `Verifier.verify` beside a raw RSA-2048 verification, in the same run.

Issuing a power of attorney is bounded by signature verification, so the interesting
figure is how close the whole check (JCS, CMS parsing, signature, path, key usage,
identity) comes to the one RSA operation it cannot avoid. "Warm" reuses what the verifier
keeps per certificate (parsed certificate, key, key usage, identity, checked path), as a
running service does for a signer seen before; "nothing cached" uses a new verifier each
time, the worst case of a signer never seen before under a CA never seen before.

    .venv/bin/python bench/eds.py [seconds per measurement, default 3]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from domain.eds import TrustStore, Verifier
from epoa.demo_keys import DEMO_PASSWORD, make_demo, sign_document


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second over about `seconds` of wall time."""
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(50):
            operation()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    with tempfile.TemporaryDirectory() as directory:
        demo = make_demo(Path(directory))
        verifier = Verifier(TrustStore.from_path(demo.ca_pem))
        document = {
            "type": "epoa.issue",
            "document_id": "0b6f8f1e-8a53-4a8e-9d4e-3f7f3c2d1a90",
            "signed_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
            "case_number": "7594-26-00-2/1234",
            "principal": {"iin": demo.principal.id},
            "attorneys": [{"iin": attorney.id} for attorney in demo.attorneys],
            "rights": [
                "represent_first_instance",
                "represent_appeal",
                "access_case_materials",
                "file_petitions",
                "appeal_judicial_acts",
            ],
            "valid_until": "2027-12-31",
        }
        body = sign_document(document, demo.principal.p12, DEMO_PASSWORD)
        verifier.verify(body["document"], body["signature"])  # warm the caches once

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        message = b"x" * 300
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        public = key.public_key()

        trust = TrustStore.from_path(demo.ca_pem)

        def cold() -> object:
            return Verifier(trust).verify(body["document"], body["signature"])

        full = rate(lambda: verifier.verify(body["document"], body["signature"]), seconds)
        uncached = rate(cold, seconds)
        raw = rate(
            lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()),
            seconds,
        )
    print(f"Verifier.verify, warm caches (RSA-2048 signer, EC P-256 CAs): {full:9.0f} /s")
    print(f"Verifier.verify, nothing cached (every link re-checked):      {uncached:9.0f} /s")
    print(f"raw RSA-2048 PKCS#1 v1.5 verify:                               {raw:9.0f} /s")
    print(f"ratio warm verify / raw RSA:                                   {full / raw:9.3f}")
    print(f"ratio uncached verify / raw RSA:                               {uncached / raw:9.3f}")


if __name__ == "__main__":
    main()
