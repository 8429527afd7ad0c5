"""uploaddata: bulk CSV upload of customers, accounts or cases.

No vendor documentation exists for `uploaddata` (the fact sheet, A5, lists it as not
found). This definition is the sandbox's, built from the documented historical-import
practice: CSV files of customers or cases, at most 5,000 rows each, cases linked to
customers by the customer `Id`.

Request: `POST {base}/uploaddata?db={account}&Type=customers|accounts|cases&Format=json`
with the CSV text as the body (`Content-Type: text/csv; charset=utf-8`): a header row
of field names (the names the single-record endpoints take) and 1 to 5,000 data rows.
An empty file, a file with no data rows, more than 5,000 data rows, a body that is not
UTF-8, or a duplicate column name → 400 7006 and nothing is applied.

Per row (empty cells count as absent):
- customers: upsert by `Id` (idempotent; fields as updatecustomer takes them);
- accounts: upsert by (`Type`, `ExternalAccountId`) (idempotent);
- cases: one new case per row, like createcase (NOT idempotent: uploading a file twice
  creates every case twice); `ExternalId` is required here.
Blank lines are skipped (no result) but keep their number. A rejected row does not
reject the file. Answer:

    {"uploaddataresponse": {"type": "cases", "rows": 3, "created": 2, "updated": 0,
     "rejected": 1, "results": [
        {"row": 1, "status": "created", "id": "480001", "code": "", "info": ""},
        {"row": 2, "status": "rejected", "id": "", "code": "7004",
         "info": "Invalid case type 'Complain'"}, ...]}}

`row` is the 1-based data row of the CSV (the header is not counted). Rows reject with
codes of the uploaddata block (7003 missing, 7004 invalid value, 7005 exists, 7006 a row
with more cells than the header).
"""

from __future__ import annotations

import csv
import io

from loader.sandbox.answers import (
    INVALID_VALUE,
    UNREADABLE,
    Answer,
    ApiError,
    Call,
    Context,
    bad_request,
    now,
    render,
)
from loader.sandbox.writes import (
    check_account,
    check_case,
    customer_fields,
    insert_case,
    required,
)

MAX_ROWS = 5000
TYPES = ("customers", "accounts", "cases")


def uploaddata(call: Call, ctx: Context) -> Answer:
    kind = required(call.params, "Type", call.block)
    if kind not in TYPES:
        info = f"Invalid value '{kind}' for Type (customers, accounts or cases)"
        raise bad_request(call.block, INVALID_VALUE, info)
    header, rows = _read_csv(call)
    results: list[dict[str, object]] = []
    counts = {"created": 0, "updated": 0, "rejected": 0}
    for number, cells in enumerate(rows, start=1):
        if not any(cells):
            continue  # a blank line: no result, but the numbering still counts it
        result = {"row": number, "status": "rejected", "id": "", "code": "", "info": ""}
        try:
            if len(cells) > len(header):
                info = f"Row has {len(cells)} cells, the header has {len(header)}"
                raise bad_request(call.block, UNREADABLE, info)
            params = {name: value for name, value in zip(header, cells, strict=False) if value}
            result["id"], created = _apply(kind, params, call, ctx)
            result["status"] = "created" if created else "updated"
        except ApiError as err:
            result["code"], result["info"] = str(err.code), err.info
        counts[str(result["status"])] += 1
        results.append(result)
    payload = {"type": kind, "rows": len(results), **counts, "results": results}
    return render({"uploaddataresponse": payload}, call.format)


def _apply(kind: str, params: dict[str, str], call: Call, ctx: Context) -> tuple[str, bool]:
    """Apply one row; (id, created). Raises ApiError before writing when the row is wrong."""
    if kind == "customers":
        customer_id = required(params, "Id", call.block)
        created = ctx.store.upsert_customer(customer_id, customer_fields(params), now())
        return customer_id, created
    if kind == "accounts":
        account = check_account(params, ctx.tenant, call.block)
        account_id, created = ctx.store.upsert_account(
            account.account_type, account.external_id, account.customer_id, account.fields, now()
        )
        return str(account_id), created
    case = check_case(params, ctx.tenant, call.block, external_id_required=True)
    return str(insert_case(ctx.store, case, call.block)), True


def _read_csv(call: Call) -> tuple[list[str], list[list[str]]]:
    try:
        text = call.body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_request(call.block, UNREADABLE, "The CSV file is not UTF-8") from exc
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise bad_request(call.block, UNREADABLE, f"The CSV file cannot be read: {exc}") from exc
    while table and not any(table[-1]):
        table.pop()
    if not table:
        raise bad_request(call.block, UNREADABLE, "The CSV file is empty")
    header = [name.strip() for name in table[0]]
    rows = table[1:]
    if not any(any(row) for row in rows):
        raise bad_request(call.block, UNREADABLE, "The CSV file has no data rows")
    if len(rows) > MAX_ROWS:
        info = f"Too many rows: {len(rows)} data rows, at most {MAX_ROWS} per upload"
        raise bad_request(call.block, UNREADABLE, info)
    seen: set[str] = set()
    for name in header:
        if not name:
            raise bad_request(call.block, UNREADABLE, "The CSV header has a blank column name")
        if name in seen:
            raise bad_request(call.block, UNREADABLE, f"Duplicate column '{name}' in the header")
        seen.add(name)
    return header, rows
