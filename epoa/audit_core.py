"""The one pass of `epoa audit verify`, over raw records in global order, from a store or an
export alike.

Per record: seal and chain (`audit_chain`), evidence and its binding to the event
(`audit_events`), the audit log's leaf at that position and any receipt naming it, and the
Merkle tree grown by its hash and compared with each claimed head (`audit_merkle`). At the
end: cross-record facts (concluded cases, attachments) and what is missing. Memory holds one
page of records, a bounded set of recent chain heads and one tree frontier; the rest spills
to a temporary file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain import merkle
from domain.eds import Verifier
from domain.seal import Finding, Predecessor, RawRecord, Verdict
from domain.seal_checks import verify_states
from epoa.audit_chain import ChainCheck, Heads, Scratch
from epoa.audit_events import Decode, EventChecks
from epoa.audit_merkle import Claim, LeafLedger, ReceiptCheck, StoredNodes, TileCheck, TreeCheck
from projections.audit_tree import Leaf

KEPT_FINDINGS = 1000
COMMIT_EVERY = 1000


@dataclass
class AuditResult:
    records: int = 0
    findings: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    checkpoints_checked: int = 0
    first_findings: list[Finding] = field(default_factory=list)
    """The first `KEPT_FINDINGS`; every one was reported as it was found."""
    skipped: list[str] = field(default_factory=list)
    """Checks not made, and why (a position range, no trust store, ...)."""

    @property
    def intact(self) -> bool:
        return self.findings == 0


@dataclass
class Sources:
    """Everything the pass compares the records with; None leaves that check out."""

    claims: Iterable[Claim] | None = None
    leaves: Iterable[Leaf] | None = None
    leaf_claims: Iterable[Claim] = ()
    nodes: StoredNodes | None = None
    receipts: ReceiptCheck | None = None


class Audit:
    def __init__(
        self,
        public_keys: Mapping[bytes, Ed25519PublicKey],
        decode: Decode,
        verifier: Verifier | None,
        sources: Sources,
        *,
        on_finding: Callable[[Finding], None] = lambda _: None,
        whole_log: bool = True,
        predecessor: Predecessor | None = None,
    ) -> None:
        self.result = AuditResult()
        self._on_finding = on_finding
        self._scratch = Scratch()
        self._public_keys = public_keys
        self._chain = ChainCheck(public_keys, Heads(self._scratch), predecessor)
        self._events = EventChecks(self._scratch, decode, verifier, facts=whole_log)
        self._whole_log = whole_log
        self._tree = TreeCheck(sources.claims) if whole_log and sources.claims is not None else None
        self._ledger = (
            LeafLedger(
                sources.leaves,
                sources.leaf_claims,
                TileCheck(sources.nodes) if sources.nodes is not None else None,
            )
            if whole_log and sources.leaves is not None
            else None
        )
        self._receipts = sources.receipts
        self._last: RawRecord | None = None
        self._unverified_from: RawRecord | None = None
        self._covered = 0
        """How many records the newest checkpoint that matched covers."""
        if verifier is None:
            self.result.skipped.append(
                "signed documents (evidence): no trust store; set EPOA_TRUSTED_CA to check them"
            )
        if not whole_log:
            self.result.skipped.append("checkpoints and case conclusions: a position range")
        if self._tree is not None:
            self._tree_results(self._tree.compare(), None)

    def report(self, finding: Finding) -> None:
        self.result.findings += 1
        self.result.kinds[finding.kind] += 1
        if len(self.result.first_findings) < KEPT_FINDINGS:
            self.result.first_findings.append(finding)
        self._on_finding(finding)

    def verdicts(self, records: Sequence[RawRecord]) -> list[Verdict]:
        """What checking each record's seal gives, the signatures verified together: safe to
        call on another thread while `check_many` works through earlier records."""
        return verify_states(self._public_keys, records)

    def check_many(self, records: Sequence[RawRecord], verdicts: Sequence[Verdict]) -> None:
        """`check` each record in order, with its seal's verdict (`verdicts`)."""
        for record, verdict in zip(records, verdicts, strict=True):
            self.check(record, verdict)

    def check(self, record: RawRecord, verdict: Verdict | None = None) -> None:
        """`verdict`: what checking the record's seal gave, if already known."""
        self.result.records += 1
        found, digest = self._chain.check(record, verdict)
        found += self._events.check(record, sealed=not found)
        if self._ledger is not None:
            found += self._ledger.observe(record, digest)
        if self._receipts is not None:
            found += self._receipts.observe(record, digest)
        for finding in found:
            self.report(finding)
        if self._tree is not None:
            if self._unverified_from is None:
                self._unverified_from = record
            self._tree_results(self._tree.append(merkle.leaf_hash(digest)), record)
        self._last = record
        if self.result.records % COMMIT_EVERY == 0:
            self._scratch.commit()

    def _tree_results(self, results: list[tuple[Claim, bool]], record: RawRecord | None) -> None:
        for claim, ok in results:
            if ok:
                self._unverified_from = None
                self._covered = claim.size
                continue
            first = self._unverified_from or record
            where = (first.originator_id, first.version, first.position) if first else ("", 0, None)
            too_late = self._tree is not None and claim.size < self._tree.frontier.size
            detail = (
                f"the {claim.source} checkpoint of tree size {claim.size} came out of order"
                if too_late
                else f"the {claim.source} checkpoint of tree size {claim.size} does not match "
                "the store's records from this one up to that size"
            )
            self.report(Finding("checkpoint-mismatch", *where, detail))

    def finish(self, stop: int | None = None, start: int | None = None) -> AuditResult:
        """The findings only the end can tell; `stop` if the pass ended at a position."""
        try:
            if self._ledger is not None:
                for finding in self._ledger.finish():
                    self.report(finding)
            if self._tree is not None:
                if stop is None:
                    self._truncation(self._tree.beyond())
                    self._uncovered_tail()
                self.result.checkpoints_checked = self._tree.checked
            if self._receipts is not None:
                for finding in self._receipts.finish(start, stop):
                    self.report(finding)
            for finding in self._events.finish():
                self.report(finding)
        finally:
            self._scratch.close()
        return self.result

    def _uncovered_tail(self) -> None:
        """Say so when the newest records are under no signed checkpoint: what came after
        them (removed, say, with the checkpoints) only a witness file or receipts can show."""
        assert self._tree is not None
        first, held = self._unverified_from, self._tree.frontier.size
        if first is None or held <= self._covered:
            return
        self.result.skipped.append(
            f"the last {held - self._covered} record(s), from position {first.position}, are "
            "under no signed checkpoint that matches them: whether records after them were "
            "removed, only --witness or --receipts can tell"
        )

    def _truncation(self, claims: Iterable[Claim]) -> None:
        assert self._tree is not None
        held = self._tree.frontier.size
        last = self._last
        where = (last.originator_id, last.version, last.position) if last else ("", 0, None)
        for claim in claims:
            detail = (
                f"the {claim.source} checkpoint covers {claim.size} records; the store holds "
                f"{held}, up to this one: {claim.size - held} signed record(s) are gone"
            )
            self.report(Finding("records-removed", *where, detail))
