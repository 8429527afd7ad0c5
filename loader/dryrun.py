"""`loader validate`: check every row, send nothing, write what a data owner needs.

Writes into the output folder:
- `report.json` and `report.html`: summary counts and every issue (pii values masked);
- `rejects.csv` (`rejects.xlsx` for an xlsx source): the rejected rows in the source's
  own layout plus an `_errors` column, so the fixed file feeds back with `--source`;
- with `emit`, one JSON line per payload of a valid row.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from loader.issues import Issue
from loader.mapping import StepRef
from loader.pipeline import Checked, Prepared, prepare
from loader.reports import Summary, TableWriter, write_report_html, write_report_json
from loader.sources import Table
from loader.spec import Spec

EXIT_VALID, EXIT_INVALID, EXIT_STOPPED = 0, 1, 3


@dataclass(frozen=True, slots=True)
class DryRunResult:
    summary: Summary
    out_dir: Path
    report_json: Path
    report_html: Path
    rejects: Path | None  # None when no row was rejected
    emitted: Path | None

    @property
    def exit_code(self) -> int:
        if self.summary.stopped_early:
            return EXIT_STOPPED
        return EXIT_INVALID if self.summary.invalid else EXIT_VALID


def default_out_dir(spec: Spec) -> Path:
    return Path("runs") / spec.name


def dry_run(
    spec: Spec,
    *,
    out_dir: Path | None = None,
    max_errors: int | None = None,
    emit: Path | None = None,
    progress: bool = False,
) -> DryRunResult:
    """Check every row of `spec`'s source and write the reports. Stops early (exit 3) once
    `max_errors` error issues have been found: a hopeless file need not be read to the end."""
    out = out_dir or default_out_dir(spec)
    out.mkdir(parents=True, exist_ok=True)
    is_pii = _pii_test(spec)
    issues: list[Issue] = []
    rows = valid = errors = 0
    stopped = False
    rejects_path = out / ("rejects.xlsx" if _is_xlsx(spec) else "rejects.csv")
    with ExitStack() as stack:
        prepared = stack.enter_context(prepare(spec))
        issues.extend(prepared.header_issues)
        rejects = _Rejects(prepared, rejects_path, stack)
        emitter = stack.enter_context(emit.open("w", encoding="utf-8")) if emit else None
        bar = _progress_bar(prepared, progress)
        stack.callback(bar.close)
        tick = None if bar.disable else bar.update  # a disabled bar costs nothing per row
        for checked in prepared:
            if tick is not None:
                tick()
            if checked.issues:
                issues.extend(checked.issues)
            if checked.row.blank:
                continue
            rows += 1
            if checked.valid:
                valid += 1
                if emitter:
                    _emit(emitter, checked)
                continue
            rejects.add(checked)
            errors += sum(1 for i in checked.issues if i.severity == "error")
            if max_errors is not None and errors >= max_errors:
                stopped = True
                break
    summary = Summary(
        rows=rows,
        valid=valid,
        invalid=rows - valid,
        issues=len(issues),
        warnings=sum(1 for i in issues if i.severity == "warning"),
        source=str(spec.source.file),
        sheet=prepared.table.sheet,
        spec=str(spec.path),
        stopped_early=stopped,
    )
    report_json, report_html = out / "report.json", out / "report.html"
    write_report_json(report_json, summary, issues, pii=is_pii)
    write_report_html(report_html, summary, issues, pii=is_pii, title=f"Dry run: {spec.name}")
    if not rejects.count:
        rejects_path.unlink(missing_ok=True)
    return DryRunResult(
        summary, out, report_json, report_html, rejects_path if rejects.count else None, emit
    )


class _Rejects:
    """The rejected rows in the source's layout: same sheet name, same rows above the
    header, same columns, plus `_errors`; so the fixed file loads with the same spec."""

    def __init__(self, prepared: Prepared, path: Path, stack: ExitStack) -> None:
        self._prepared, self._path, self._stack = prepared, path, stack
        self._writer: TableWriter | None = None
        self.count = 0

    def add(self, checked: Checked) -> None:
        if self._writer is None:
            table = self._prepared.table
            self._path.unlink(missing_ok=True)
            self._writer = self._stack.enter_context(
                TableWriter(self._path, [*table.header, "_errors"], **_layout(table))
            )
        errors = "; ".join(
            f"{i.where or 'row'}: {i.message}" for i in checked.issues if i.severity == "error"
        )
        self._writer.write([*checked.row.values, errors])
        self.count += 1


def _layout(table: Table) -> dict[str, Any]:
    """Keyword arguments of TableWriter that keep the source's sheet and header row."""
    return {
        "sheet": table.sheet,
        "header_row": table.header_row,
        "preamble": f"Rejected rows of {table.path.name}: fix them, then feed this file back "
        "with --source",
    }


def _emit(out: IO[str], checked: Checked) -> None:
    for step, payload in checked.payloads.items():
        record = {
            "row": checked.row.number,
            "key": checked.key,
            "step": step,
            "payload": {
                k: {"from_step": v.step} if isinstance(v, StepRef) else v
                for k, v in payload.items()
            },
        }
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def _pii_test(spec: Spec) -> Callable[[Issue], bool]:
    pii = {step.id: spec.pii_fields(step.id) for step in spec.steps}
    pii_columns = {
        column
        for step in spec.steps
        for field in step.fields
        if field.name in pii[step.id]
        for column in field.columns
    }

    def is_pii(issue: Issue) -> bool:
        if issue.code == "cell-error":
            return False  # the value is Excel's error text (#N/A), not a person's data
        if issue.step is not None and issue.field in pii.get(issue.step, ()):
            return True
        return issue.column in pii_columns

    return is_pii


def _is_xlsx(spec: Spec) -> bool:
    return spec.source.file.suffix.lower() in {".xlsx", ".xlsm"}


def _progress_bar(prepared: Prepared, enabled: bool) -> tqdm[Any]:
    return tqdm(
        total=prepared.table.row_count_hint,
        unit=" rows",
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
        file=sys.stderr,
    )
