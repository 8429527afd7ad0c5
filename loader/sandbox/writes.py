"""The write endpoints: createcase, createaccount, updateaccount, updatecustomer, updatecase,
createcasenotes. Each takes a `Call` and a `Context` and returns an `Answer`, or raises
`ApiError` before it has written anything (checks first, writes last), so that the app's
per-request transaction never has to undo half a change.

Answers (`Format=json`; with `Format=xml`, the default, the same names as XML elements):

    createcase       {"createcaseresponse": {"caseid": "480001"}}
    createaccount    {"createaccountresponse": {"accountid": "1"}}
    updateaccount    {"updateaccountresponse": {"accountid": "1"}}
    updatecustomer   {"updatecustomerresponse": {"id": "<the customer Id, or NewId>"}}
    updatecase       {"updatecaseresponse": {"caseid": "480001"}}
    createcasenotes  {"createcasenotesresponse": {"noteid": "1"}}

Semantics worth knowing (inferred where the vendor is silent; see README.md):
- createcase does not reject a duplicate `ExternalId`, like the real service.
  `Customer.Id` upserts the customer with the `Customer.*` fields sent. `RequestId`
  sets the case id; an id already in use is refused (N005).
- createaccount refuses an existing (Type, ExternalAccountId) (N005); updateaccount
  refuses an unknown one (N002).
- updatecustomer creates an unknown `Id` (an upsert); `NewId` re-keys the customer and
  its cases; `City`, `State`, `ZIPCode` are stored as `Town`, `County`, `Postcode`.
- updatecase and createcasenotes find the case by `CaseId` or `ExternalId`; an
  `ExternalId` several cases share is refused (N002) rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from loader.sandbox.answers import (
    EXISTS,
    INVALID_VALUE,
    MISSING,
    NOT_IDENTIFIED,
    Answer,
    Call,
    Context,
    bad_request,
    now,
    render,
)
from loader.sandbox.store import Store
from loader.sandbox.tenant import Tenant

# Parameters that steer the request and are not stored as data.
CONTROL = frozenset({"Format"})
DEFAULT_STATUS = "New case"
_DOCUMENT = re.compile(r"^Document(\d+)\.")
_CUSTOMER_ALIASES = {"City": "Town", "State": "County", "ZIPCode": "Postcode"}
_ACCOUNT_DATES = ("BalanceDate", "ClosedDate", "StartDate", "EndDate", "DateRemoved")


@dataclass(frozen=True, slots=True)
class NewCase:
    """A createcase request that passed every check."""

    case_id: int | None
    external_id: str | None
    case_type: str
    status: str
    received: str | None
    customer_id: str | None
    customer_fields: dict[str, str]
    fields: dict[str, str]


def required(params: dict[str, str], name: str, block: int) -> str:
    value = params.get(name, "")
    if value == "":
        raise bad_request(block, MISSING, f"Required parameter {name} was not supplied.")
    return value


def check_case(
    params: dict[str, str], tenant: Tenant, block: int, *, external_id_required: bool = False
) -> NewCase:
    """Check a createcase request (or an uploaded case row) against the tenant."""
    case_type = required(params, "Type", block)
    if case_type not in tenant.case_types:
        raise bad_request(block, INVALID_VALUE, f"Invalid case type '{case_type}'")
    if external_id_required:
        required(params, "ExternalId", block)
    check_value_lists(params, tenant, block)
    account_type = params.get("ExternalAccountType", "")
    if account_type and account_type not in tenant.account_types:
        raise bad_request(block, INVALID_VALUE, f"Invalid account type '{account_type}'")
    request_id = params.get("RequestId", "")
    if request_id and not request_id.isdigit():
        raise bad_request(block, INVALID_VALUE, f"Invalid value '{request_id}' for RequestId")
    received = params.get("RequestDate", "")
    for name in {m.group(0) for key in params if (m := _DOCUMENT.match(key))}:
        required(params, f"{name}URL", block)
    fields = {k: v for k, v in params.items() if k not in CONTROL}
    customer_fields = {
        _CUSTOMER_ALIASES.get(k[9:], k[9:]): v
        for k, v in fields.items()
        if k.startswith("Customer.") and k != "Customer.Id"
    }
    return NewCase(
        case_id=int(request_id) if request_id else None,
        external_id=params.get("ExternalId") or None,
        case_type=case_type,
        status=params.get("Status") or DEFAULT_STATUS,
        received=parse_datetime(received, "RequestDate", block) if received else None,
        customer_id=params.get("Customer.Id") or None,
        customer_fields=customer_fields,
        fields=fields,
    )


def check_value_lists(params: dict[str, str], tenant: Tenant, block: int) -> None:
    for field_name, list_name in tenant.checked_fields.items():
        value = params.get(field_name, "")
        allowed = tenant.value_list(list_name) or ()
        if value and value not in allowed:
            raise bad_request(block, INVALID_VALUE, f"Invalid value '{value}' for {field_name}")


def insert_case(store: Store, case: NewCase, block: int) -> int:
    """Write a checked case (and upsert its customer); returns the new case id."""
    if case.case_id is not None and store.find_cases(case_id=case.case_id):
        raise bad_request(block, EXISTS, f"Case {case.case_id} already exists (RequestId)")
    stamp = now()
    case_id = store.insert_case(
        case_id=case.case_id,
        external_id=case.external_id,
        case_type=case.case_type,
        status=case.status,
        received=case.received or stamp,
        now=stamp,
        customer_id=case.customer_id,
        fields=case.fields,
    )
    if case.customer_id is not None:
        store.upsert_customer(case.customer_id, case.customer_fields, stamp)
    return case_id


def parse_datetime(value: str, name: str, block: int) -> str:
    """An ISO date or date-time as `YYYY-MM-DDTHH:MM:SS`; N004 when it is neither."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        info = f"Invalid value '{value}' for {name} (expected YYYY-MM-DDThh:mm:ss)"
        raise bad_request(block, INVALID_VALUE, info) from exc
    return parsed.replace(tzinfo=None, microsecond=0).isoformat()


def createcase(call: Call, ctx: Context) -> Answer:
    case = check_case(call.params, ctx.tenant, call.block)
    case_id = insert_case(ctx.store, case, call.block)
    return render({"createcaseresponse": {"caseid": str(case_id)}}, call.format)


@dataclass(frozen=True, slots=True)
class AccountRequest:
    account_type: str
    external_id: str
    customer_id: str | None
    fields: dict[str, str]


def check_account(params: dict[str, str], tenant: Tenant, block: int) -> AccountRequest:
    account_type = required(params, "Type", block)
    external_id = required(params, "ExternalAccountId", block)
    if account_type not in tenant.account_types:
        raise bad_request(block, INVALID_VALUE, f"Invalid account type '{account_type}'")
    for name in _ACCOUNT_DATES:
        value = params.get(name, "")
        if value:
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                info = f"Invalid value '{value}' for {name} (expected YYYY-MM-DD)"
                raise bad_request(block, INVALID_VALUE, info) from exc
    fields = {k: v for k, v in params.items() if k not in CONTROL}
    customer_id = params.get("Customer.Id") or params.get("CustomerId") or None
    return AccountRequest(account_type, external_id, customer_id, fields)


def createaccount(call: Call, ctx: Context) -> Answer:
    account = check_account(call.params, ctx.tenant, call.block)
    if ctx.store.find_account(account.account_type, account.external_id) is not None:
        info = f"Account {account.account_type} {account.external_id} already exists"
        raise bad_request(call.block, EXISTS, info)
    account_id, _ = ctx.store.upsert_account(
        account.account_type, account.external_id, account.customer_id, account.fields, now()
    )
    return render({"createaccountresponse": {"accountid": str(account_id)}}, call.format)


def updateaccount(call: Call, ctx: Context) -> Answer:
    account = check_account(call.params, ctx.tenant, call.block)
    if ctx.store.find_account(account.account_type, account.external_id) is None:
        raise bad_request(call.block, NOT_IDENTIFIED, "Unable to identify account")
    account_id, _ = ctx.store.upsert_account(
        account.account_type, account.external_id, account.customer_id, account.fields, now()
    )
    return render({"updateaccountresponse": {"accountid": str(account_id)}}, call.format)


def customer_fields(params: dict[str, str]) -> dict[str, str]:
    """The stored fields of a customer: aliases folded, ids and control names left out."""
    skip = CONTROL | {"Id", "NewId"}
    return {_CUSTOMER_ALIASES.get(k, k): v for k, v in params.items() if k not in skip}


def updatecustomer(call: Call, ctx: Context) -> Answer:
    customer_id = required(call.params, "Id", call.block)
    new_id = call.params.get("NewId", "")
    if new_id and new_id != customer_id and ctx.store.customer(new_id) is not None:
        raise bad_request(call.block, EXISTS, f"Customer {new_id} already exists (NewId)")
    ctx.store.upsert_customer(customer_id, customer_fields(call.params), now())
    if new_id and new_id != customer_id:
        ctx.store.rekey_customer(customer_id, new_id)
        customer_id = new_id
    return render({"updatecustomerresponse": {"id": customer_id}}, call.format)


def find_case(params: dict[str, str], store: Store, block: int) -> dict[str, object]:
    """The one case `CaseId` (preferred) or `ExternalId` names; N002 otherwise."""
    case_id, external_id = params.get("CaseId", ""), params.get("ExternalId", "")
    if case_id:
        found = store.find_cases(case_id=int(case_id)) if case_id.isdigit() else []
    elif external_id:
        found = store.find_cases(external_id=external_id)
    else:
        raise bad_request(block, NOT_IDENTIFIED, "Unable to identify case")
    if len(found) != 1:
        detail = f"{len(found)} cases have ExternalId {external_id}" if found else None
        raise bad_request(block, NOT_IDENTIFIED, "Unable to identify case", detail=detail)
    return found[0]


def updatecase(call: Call, ctx: Context) -> Answer:
    case = find_case(call.params, ctx.store, call.block)
    check_value_lists(call.params, ctx.tenant, call.block)
    changes: dict[str, object] = {"updated": now()}
    new_type = call.params.get("Type", "")
    if new_type:
        if new_type not in ctx.tenant.case_types:
            raise bad_request(call.block, INVALID_VALUE, f"Invalid case type '{new_type}'")
        changes["case_type"] = new_type
    if call.params.get("Status"):
        changes["status"] = call.params["Status"]
    if call.params.get("CaseId") and call.params.get("ExternalId"):
        changes["external_id"] = call.params["ExternalId"]
    updates = {k: v for k, v in call.params.items() if k not in CONTROL | {"CaseId"}}
    fields = {**_as_fields(case["fields"]), **updates}
    case_id = int(str(case["case_id"]))
    ctx.store.update_case(case_id, changes, fields)
    return render({"updatecaseresponse": {"caseid": str(case_id)}}, call.format)


def createcasenotes(call: Call, ctx: Context) -> Answer:
    case = find_case(call.params, ctx.store, call.block)
    required(call.params, "Note", call.block)
    fields = {k: v for k, v in call.params.items() if k not in CONTROL}
    note_id = ctx.store.insert_note(int(str(case["case_id"])), fields, now())
    return render({"createcasenotesresponse": {"noteid": str(note_id)}}, call.format)


def _as_fields(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
