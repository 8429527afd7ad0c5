"""The read endpoints: getcasedetails, getvaluelist and getreport.

getcasedetails (`CaseId` or `ExternalId`): one flat object keyed by dotted names
(`CaseDetails.CaseId`, `CaseDetails.ExternalId`, `CaseDetails.CaseType`,
`CaseStatus.Status`, `CaseStatusReceipt.DateReceived`, `MainParty.Reference`, ...,
then every field the case was created or updated with). Several cases with one
`ExternalId` answer the JSON objects concatenated, `{…}{…}`, as the real service does;
XML answers `<Cases><Case>…</Case>…</Cases>`. None → 400 N002 "Unable to identify case".

getvaluelist (`Name`, a sandbox choice: the parameter is not documented):
`{"getvaluelistresponse": {"name": "RequestMethod", "values": ["Email", ...]}}`.

getreport as seed 001 describes: `ReportId` (8003 when missing, 8051 when unknown),
`Format` xml (default) / json / csv, `CSVHeader`, `CSVFooter` (a last line
`Rows: N`, inferred), `CSVFields` (comma-separated column names, matched without
regard to case), `CSVDelimitor`, `Compression=gzip` (the body gzipped, sent with
`Content-Encoding: gzip`, inferred), and the window `From`/`Until` (YYYY-MM-DD,
inclusive) or `FromTime`/`UntilTime` (YYYY-MM-DD hh:mm:ss, overriding them) applied to
the date received (`RequestDate`, or the creation time). Other errors are 8099.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import secrets
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any

from loader.sandbox.answers import (
    CSV_TYPE,
    JSON_TYPE,
    MISSING,
    NOT_IDENTIFIED,
    VARIOUS,
    XML_TYPE,
    Answer,
    Call,
    Context,
    bad_request,
    render,
    xml_rows,
)
from loader.sandbox.tenant import Report

_TRUE = {"yes", "true"}
_REPORT_NOT_FOUND = 51


def case_row(case: dict[str, Any], customer: dict[str, Any] | None, party: str) -> dict[str, str]:
    """The flat, dotted view of a case that getcasedetails and getreport share."""
    received = str(case["received"])
    case_type = case["case_type"]
    row = {
        "CaseDetails.CaseId": str(case["case_id"]),
        "CaseDetails.ExternalId": case["external_id"] or "",
        "CaseDetails.CaseType": case_type,
        "CaseDetails.CaseLabel": case["fields"].get("Label")
        or f"{case['case_type']} {case['case_id']}",
        "CaseStatus.Status": case["status"],
        "CaseStatusReceipt.Method": case["fields"].get("RequestMethod", ""),
        "CaseStatusReceipt.DateReceived": received[:10],
        "CaseStatusReceipt.TimeReceived": received,
        "CaseStatusReceipt.TimeCreated": str(case["created"]),
        "CaseStatusTouchTimes.LastUpdatedTime": str(case["updated"]),
        f"{party}.Reference": case["customer_id"] or "",
    }
    if customer is not None:
        for name, value in customer["fields"].items():
            row.setdefault(f"{party}.{name}", str(value))
    for name, value in case["fields"].items():
        row.setdefault(name, str(value))
    return row


def _customer_of(ctx: Context, case: dict[str, Any]) -> dict[str, Any] | None:
    return ctx.store.customer(case["customer_id"]) if case["customer_id"] else None


def getcasedetails(call: Call, ctx: Context) -> Answer:
    case_id, external_id = call.params.get("CaseId", ""), call.params.get("ExternalId", "")
    if case_id:
        found = ctx.store.find_cases(case_id=int(case_id)) if case_id.isdigit() else []
    elif external_id:
        found = ctx.store.find_cases(external_id=external_id)
    else:
        found = []
    if not found:
        raise bad_request(call.block, NOT_IDENTIFIED, "Unable to identify case")
    rows = [case_row(case, _customer_of(ctx, case), "MainParty") for case in found]
    if call.format == "json":
        # Several matches are concatenated objects, not an array: the real service's shape.
        return Answer(200, "".join(json.dumps(row) for row in rows).encode(), JSON_TYPE)
    attributes = {"RequestId": str(found[0]["case_id"])}
    return Answer(200, xml_rows("Cases", "Case", rows, attributes), XML_TYPE)


def getvaluelist(call: Call, ctx: Context) -> Answer:
    name = call.params.get("Name", "")
    if not name:
        raise bad_request(call.block, MISSING, "Required parameter Name was not supplied.")
    values = ctx.tenant.value_list(name)
    if values is None:
        raise bad_request(call.block, NOT_IDENTIFIED, f"Unable to identify value list '{name}'")
    return render({"getvaluelistresponse": {"name": name, "values": list(values)}}, call.format)


def getreport(call: Call, ctx: Context) -> Answer:
    report_id = call.params.get("ReportId", "")
    if not report_id:
        raise bad_request(call.block, MISSING, "Required parameter ReportId was not supplied.")
    report = ctx.tenant.reports.get(report_id)
    if report is None:
        info = f"Report {report_id} not found"
        raise bad_request(call.block, _REPORT_NOT_FOUND, info)
    start, end = _window(call)
    rows = _report_rows(ctx, report, start, end)
    if call.format == "csv":
        answer = _csv(call, rows)
    elif call.format == "json":
        answer = Answer(200, json.dumps(rows).encode(), JSON_TYPE)
    else:
        answer = Answer(200, xml_rows("Rows", "Row", rows, {"RequestId": _request_id()}), XML_TYPE)
    if call.params.get("Compression", "").lower() == "gzip":
        return Answer(
            answer.status,
            gzip.compress(answer.body, compresslevel=5),
            answer.content_type,
            (*answer.headers, ("Content-Encoding", "gzip")),
        )
    return answer


def _report_rows(
    ctx: Context, report: Report, start: datetime | None, end: datetime | None
) -> list[dict[str, str]]:
    customers = {c["id"]: c for c in ctx.store.customers()}
    rows: list[dict[str, str]] = []
    for case in ctx.store.cases():
        if report.case_types and case["case_type"] not in report.case_types:
            continue
        received = datetime.fromisoformat(str(case["received"]))
        if (start is not None and received < start) or (end is not None and received > end):
            continue
        rows.append(case_row(case, customers.get(case["customer_id"]), "Customer"))
    columns = list(report.fields) or _union(rows)
    return [{name: row.get(name, "") for name in columns} for row in rows]


def _union(rows: Iterable[dict[str, str]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _window(call: Call) -> tuple[datetime | None, datetime | None]:
    start = _moment(call, "FromTime") or _day(call, "From", time.min)
    end = _moment(call, "UntilTime") or _day(call, "Until", time.max)
    return start, end


def _day(call: Call, name: str, at: time) -> datetime | None:
    value = call.params.get(name, "")
    if not value:
        return None
    try:
        return datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), at)
    except ValueError as exc:
        info = f"Invalid value '{value}' for {name} (expected YYYY-MM-DD)"
        raise bad_request(call.block, VARIOUS, info) from exc


def _moment(call: Call, name: str) -> datetime | None:
    value = call.params.get(name, "")
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError as exc:
        info = f"Invalid value '{value}' for {name} (expected YYYY-MM-DD hh:mm:ss)"
        raise bad_request(call.block, VARIOUS, info) from exc


def _csv(call: Call, rows: list[dict[str, str]]) -> Answer:
    delimiter = call.params.get("CSVDelimitor", "") or ","
    if len(delimiter) != 1 or delimiter in '\r\n"':
        info = f"Invalid value '{delimiter}' for CSVDelimitor (one character expected)"
        raise bad_request(call.block, VARIOUS, info)
    columns = _union(rows) if rows else list(case_row(_EMPTY_CASE, None, "Customer"))
    wanted = [c.strip() for c in call.params.get("CSVFields", "").split(",") if c.strip()]
    if wanted:
        by_lower = {c.lower(): c for c in columns}
        columns = [by_lower.get(w.lower(), w) for w in wanted]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    if call.params.get("CSVHeader", "").lower() in _TRUE:
        writer.writerow(columns)
    writer.writerows([row.get(c, "") for c in columns] for row in rows)
    if call.params.get("CSVFooter", "").lower() in _TRUE:
        out.write(f"Rows: {len(rows)}\r\n")
    return Answer(200, out.getvalue().encode(), CSV_TYPE)


def _request_id() -> str:
    return secrets.token_hex(15)


_EMPTY_CASE: dict[str, Any] = {
    "case_id": "", "external_id": "", "case_type": "", "status": "", "received": "",
    "created": "", "updated": "", "customer_id": "", "fields": {"Label": " "},
}  # fmt: skip
