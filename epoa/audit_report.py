"""How `epoa audit verify` speaks: a `rich` progress bar and one line per finding on a
terminal; with `--json`, JSON lines (findings and the summary on stdout, progress on
stderr, so a pipe reading stdout gets results only)."""

from __future__ import annotations

import json
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from domain.seal import Finding
from epoa.audit_core import AuditResult

PROGRESS_EVERY = 1.0


def describe(finding: Finding) -> str:
    if not finding.originator_id:
        where = "the log" + (f" @{finding.position}" if finding.position is not None else "")
        return f"{finding.kind}: {where}: {finding.detail}"
    return str(finding)


def as_json(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "originator_id": finding.originator_id or None,
        "version": finding.version if finding.originator_id else None,
        "position": finding.position,
        "detail": finding.detail,
    }


class Reporter:
    def __init__(
        self,
        json_lines: bool,
        total: int | None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.json_lines, self.total = json_lines, total
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self._bar: Progress | None = None
        self._task: Any = None
        self._last = 0.0
        if not json_lines and self.out.isatty():
            self._bar = Progress(
                TextColumn("verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("positions"),
                TimeRemainingColumn(),
                console=Console(file=self.out),
                transient=True,
            )

    def __enter__(self) -> Reporter:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("verify", total=self.total)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def finding(self, finding: Finding) -> None:
        if self.json_lines:
            print(json.dumps(as_json(finding)), file=self.out, flush=True)
        elif self._bar is not None:
            self._bar.console.print(describe(finding), markup=False, highlight=False)
        else:
            print(describe(finding), file=self.out)

    def progress(self, position: int, records: int) -> None:
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=position)
        elif self.json_lines and now - self._last >= PROGRESS_EVERY:
            line = {"progress": {"position": position, "records": records, "total": self.total}}
            print(json.dumps(line), file=self.err, flush=True)
        else:
            return
        self._last = now

    def note(self, text: str) -> None:
        """A remark that is not a finding (which keys were used, what was skipped)."""
        if self.json_lines:
            print(json.dumps({"note": text}), file=self.err, flush=True)
        else:
            print(f"note: {text}", file=self.err)

    def summary(self, result: AuditResult) -> None:
        if self.json_lines:
            line = {
                "records": result.records,
                "findings": result.findings,
                "kinds": dict(result.kinds),
                "checkpoints_checked": result.checkpoints_checked,
                "skipped": result.skipped,
                "intact": result.intact,
            }
            print(json.dumps(line), file=self.out, flush=True)
            return
        verdict = "INTACT" if result.intact else "DAMAGED"
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(result.kinds.items()))
        print(
            f"{result.records} records verified; {result.checkpoints_checked} checkpoint(s) "
            f"compared; {result.findings} finding(s){f' ({kinds})' if kinds else ''}; {verdict}",
            file=self.out,
        )
        for reason in result.skipped:
            print(f"not checked: {reason}", file=self.out)
