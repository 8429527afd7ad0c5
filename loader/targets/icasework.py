"""The iCasework target profile (fact sheet part A).

What the executor needs to talk to iCasework, and nothing about how rows are
scheduled: where each endpoint lives (UAT and sandboxes take `?db=ACCOUNT`,
production uses the `ACCOUNT.icasework.com` host and `ACCOUNTreports` for
`getreport`), how a payload is sent (POST, JSON body of flat dotted keys plus
`"Format": "json"`, bearer token), where the new id is in the answer, how errors are
reported (`X-Application-Error-Code` / `-Info` headers, never the HTML body), and
the look-up that answers "does this case already exist?" (`getcasedetails` by
`ExternalId`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn
from urllib.parse import parse_qs, urlsplit

import httpx2

from loader.errors import LoaderError, TargetError


@dataclass(frozen=True, slots=True)
class Operation:
    name: str  # "createcase"
    endpoint: str  # path segment
    idempotent: bool  # safe to resend after an in-doubt outcome
    lookup_field: str | None  # payload field whose value finds the record ("ExternalId")
    id_path: tuple[str, ...]  # where the new id is in the JSON answer
    chunked: bool = False  # uploaddata: many rows per request, as CSV


def _op(
    name: str,
    *,
    idempotent: bool,
    id_path: tuple[str, ...],
    lookup_field: str | None = None,
    chunked: bool = False,
) -> Operation:
    return Operation(name, name, idempotent, lookup_field, id_path, chunked)


OPERATIONS: Mapping[str, Operation] = {
    op.name: op
    for op in (
        # ExternalId is not enforced unique (A6): a resent create makes a duplicate case,
        # so an in-doubt create is settled by looking the ExternalId up.
        _op(
            "createcase",
            idempotent=False,
            lookup_field="ExternalId",
            id_path=("createcaseresponse", "caseid"),
        ),
        # No documented look-up for accounts: the --in-doubt policy decides.
        _op("createaccount", idempotent=False, id_path=("createaccountresponse", "accountid")),
        # Updates set values: sending one twice leaves the same record.
        _op("updatecustomer", idempotent=True, id_path=("updatecustomerresponse", "id")),
        _op("updateaccount", idempotent=True, id_path=("updateaccountresponse", "accountid")),
        # The vendor page names the envelope `updatecaseattributeresponse`; `new_id` also
        # accepts any other single `...response` envelope (the sandbox's `updatecaseresponse`).
        _op("updatecase", idempotent=True, id_path=("updatecaseattributeresponse", "caseid")),
        _op("uploaddata", idempotent=False, id_path=("uploaddataresponse",), chunked=True),
    )
}

LookupStatus = Literal["found", "absent", "unknown"]
UploadStatus = Literal["created", "updated", "rejected"]


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer to "does this record exist?". `unknown`: ask again later."""

    status: LookupStatus
    ids: tuple[str, ...] = ()  # every id found (ExternalId is not unique)
    http_status: int | None = None
    code: str | None = None
    info: str | None = None  # for unknown: what went wrong, e.g. "HTTP 503" or "ReadTimeout"
    auth_failed: bool = False  # the token was refused: refresh it before asking again


@dataclass(frozen=True, slots=True)
class UploadResult:
    row: int  # 1-based, counting the data rows of the chunk (the CSV header is not a row)
    status: UploadStatus
    id: str | None = None
    code: str | None = None
    info: str | None = None


ACCEPTED_FORMS = (
    "https://uat.icasework.com/?db=ACCOUNT (UAT), https://ACCOUNT.icasework.com/ "
    "(production) or http://127.0.0.1:PORT/?db=ACCOUNT (a local sandbox)"
)
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_NOT_ACCOUNTS = frozenset({"uat", "uatportal", "portal", "www"})
AUTH_INFO_PREFIXES = ("Invalid token", "Incorrect key or signature")
CASE_ID_KEYS = ("CaseDetails.CaseId", "CaseId", "caseid")


class ICasework:
    """One iCasework tenant, from the `--target` URL."""

    UPLOAD_LIMIT = 5000  # rows per uploaddata request, as for historical imports (A5)

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url.strip())
        host = (parts.hostname or "").lower()
        db = parse_qs(parts.query).get("db", [])
        account = db[0] if len(db) == 1 else None
        self._production = False
        if not parts.netloc:
            self._refuse(target_url, "")
        if parts.path not in ("", "/") or parts.fragment:
            self._refuse(target_url, "give the tenant's base URL, not an endpoint")
        if host == "uat.icasework.com" and parts.scheme == "https":
            base = "https://uat.icasework.com"
        elif host in _LOOPBACK and parts.scheme in ("http", "https") and parts.port:
            base = f"{parts.scheme}://{parts.netloc}"
        elif host.endswith(".icasework.com") and host.count(".") == 2 and parts.scheme == "https":
            label = host.split(".", 1)[0]
            if label in _NOT_ACCOUNTS or (account is not None and account.lower() != label):
                self._refuse(target_url, "")
            account = label
            base = f"https://{label}.icasework.com"
            self._production = True
        else:
            self._refuse(target_url, "")
        if account is None or not _ACCOUNT.fullmatch(account):
            self._refuse(target_url, "the account name (db=ACCOUNT) is missing or not a name")
        self.account: str = account
        self._base = base
        if self._production:
            self.token_url = f"{base}/token"
        else:
            self.token_url = f"{base}/token?db={account}"
        # Per-request costs paid once: an endpoint's parsed URL (parsing the string was
        # ~15% of a request's client CPU), and the headers of the current token.
        self._parsed: dict[str, httpx2.URL] = {}
        self._headers_for: tuple[str, httpx2.Headers] | None = None

    @staticmethod
    def _refuse(target_url: str, why: str) -> NoReturn:
        reason = f" ({why})" if why else ""
        raise LoaderError(
            f"not an iCasework target URL: {target_url!r}{reason}; use {ACCEPTED_FORMS}"
        )

    def __repr__(self) -> str:
        return f"ICasework(account={self.account!r}, base={self._base!r})"

    def url(self, endpoint: str) -> str:
        """The full URL of an endpoint for this tenant."""
        if not self._production:
            return f"{self._base}/{endpoint}?db={self.account}"
        if endpoint == "getreport":
            # Production serves reports from a separate subdomain; the main host says 8001.
            return f"https://{self.account}reports.icasework.com/getreport"
        return f"{self._base}/{endpoint}"

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _parsed_url(self, endpoint: str) -> httpx2.URL:
        url = self._parsed.get(endpoint)
        if url is None:
            url = self._parsed[endpoint] = httpx2.URL(self.url(endpoint))
        return url

    def _json_headers(self, token: str) -> httpx2.Headers:
        # Built once per token (a token lives for an hour); httpx2 copies it per request.
        cached = self._headers_for
        if cached is None or cached[0] != token:
            headers = httpx2.Headers({**self._headers(token), "Content-Type": "application/json"})
            cached = self._headers_for = (token, headers)
        return cached[1]

    def request(self, op: Operation, payload: Mapping[str, Any], token: str) -> httpx2.Request:
        """The POST that performs `op` with `payload` (flat dotted keys; nested mappings
        are flattened, None values left out: an absent field, not an empty one)."""
        if op.chunked:
            raise ValueError(f"{op.name} sends rows in chunks: use upload_request")
        if all(v is not None and not isinstance(v, Mapping) for v in payload.values()):
            body = {**payload, "Format": "json"}  # already flat: the usual case
        else:
            body = dict(_flatten(payload))
            body["Format"] = "json"
        # The bytes httpx2's `json=` would send, without its per-request detour.
        content = _dumps(body).encode()
        url, headers = self._parsed_url(op.endpoint), self._json_headers(token)
        return httpx2.Request("POST", url, content=content, headers=headers)

    def new_id(self, op: Operation, response: httpx2.Response) -> str | None:
        """The id the answer carries at `op.id_path`; None when it has none."""
        try:
            node: Any = response.json()
        except ValueError:
            return None
        path = op.id_path
        if isinstance(node, dict) and path and path[0] not in node and len(node) == 1:
            (envelope,) = node
            if isinstance(envelope, str) and envelope.endswith("response"):
                path = (envelope, *path[1:])
        for name in path:
            if not isinstance(node, dict) or name not in node:
                return None
            node = node[name]
        if node is None or isinstance(node, dict | list) or node == "":
            return None
        return str(node)

    def error(self, response: httpx2.Response) -> tuple[str | None, str | None]:
        """(X-Application-Error-Code, X-Application-Error-Info): the body is an HTML page."""
        headers = response.headers
        return headers.get("X-Application-Error-Code"), headers.get("X-Application-Error-Info")

    def is_auth_failure(self, response: httpx2.Response) -> bool:
        """The token was refused (missing, expired, bad signature): refresh and resend.
        A 401 is included although iCasework answers 403: no other meaning is plausible."""
        if response.status_code == 401:
            return True
        if response.status_code != 403:
            return False
        _, info = self.error(response)
        return info is not None and info.startswith(AUTH_INFO_PREFIXES)

    async def lookup(
        self, client: httpx2.AsyncClient, op: Operation, value: str, token: str
    ) -> Lookup:
        """Does a record with `value` in `op.lookup_field` exist? Never raises for what the
        target answers: anything but a clear yes or no is `unknown`, to ask again later."""
        if op.lookup_field is None:
            raise ValueError(f"{op.name} has no look-up")
        url = httpx2.URL(self.url("getcasedetails")).copy_merge_params(
            {op.lookup_field: value, "Format": "json"}
        )
        try:
            response = await client.get(url, headers=self._headers(token))
        except httpx2.TransportError as exc:
            return Lookup("unknown", info=f"{type(exc).__name__}: {exc}")
        status = response.status_code
        code, info = self.error(response)
        if status == 200:
            ids = _case_ids(response.text)
            if ids is None:
                return Lookup("unknown", http_status=200, info="the answer is not JSON")
            return Lookup("found", ids, http_status=200)
        if status == 400 and (
            (code is not None and code.endswith("002"))
            or (info is not None and info.startswith("Unable to identify case"))
        ):
            return Lookup("absent", http_status=400, code=code, info=info)
        return Lookup(
            "unknown",
            http_status=status,
            code=code,
            info=info or f"HTTP {status}",
            auth_failed=self.is_auth_failure(response),
        )

    def upload_request(
        self, kind: str, rows: Sequence[Mapping[str, Any]], token: str
    ) -> httpx2.Request:
        """One uploaddata chunk: a CSV whose header is the union of the rows' fields."""
        if not rows:
            raise ValueError("an upload needs at least one row")
        if len(rows) > self.UPLOAD_LIMIT:
            raise ValueError(f"at most {self.UPLOAD_LIMIT} rows per upload, not {len(rows)}")
        flat = [dict(_flatten(row)) for row in rows]
        columns = list(dict.fromkeys(name for row in flat for name in row))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(columns)
        for row in flat:
            writer.writerow(_csv_value(row.get(name)) for name in columns)
        url = httpx2.URL(self.url("uploaddata")).copy_merge_params({"Type": kind, "Format": "json"})
        headers = {**self._headers(token), "Content-Type": "text/csv; charset=utf-8"}
        return httpx2.Request("POST", url, content=text.getvalue().encode(), headers=headers)

    def upload_results(self, response: httpx2.Response) -> list[UploadResult]:
        """The per-row results of a successful uploaddata answer. A 2xx answer that is not
        the agreed shape is a TargetError: rows may have been applied, so nothing is guessed."""
        try:
            results = response.json()["uploaddataresponse"]["results"]
            return [_upload_result(item) for item in results]
        except (ValueError, KeyError, TypeError) as exc:
            raise TargetError(
                f"{self.url('uploaddata')} answered HTTP {response.status_code} without the "
                "expected uploaddataresponse results; "
                "rows of this chunk may have been applied: check them on the target"
            ) from exc


def _upload_result(item: Mapping[str, Any]) -> UploadResult:
    status = item["status"]
    if status not in ("created", "updated", "rejected"):
        raise ValueError(f"unknown upload status {status!r}")
    row = item["row"]
    if not isinstance(row, int) or isinstance(row, bool):
        raise TypeError(f"row number {row!r} is not an integer")

    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None or value == "" else str(value)

    return UploadResult(row, status, text("id"), text("code"), text("info"))


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _flatten(payload: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in payload.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{name}.")
        elif value is not None:
            yield f"{prefix}{name}", value


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_objects(text: str) -> Iterator[Any]:
    """Every JSON value in `text`: getcasedetails answers `{…}{…}` when several cases share
    an ExternalId. Raises ValueError when the text is not a sequence of JSON values."""
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        value, position = decoder.raw_decode(text, position)
        yield value


def _case_ids(text: str) -> tuple[str, ...] | None:
    """The case ids of every case in a getcasedetails answer; None if it is not JSON."""
    try:
        values = list(_json_objects(text))
    except ValueError:
        return None
    ids: list[str] = []
    for value in values:
        for case in value if isinstance(value, list) else [value]:
            found = _case_id(case)
            if found is not None and found not in ids:
                ids.append(found)
    return tuple(ids)


def _case_id(case: Any) -> str | None:
    # The flat dotted shape ({"CaseDetails.CaseId": "487347", ...}) first; then one level
    # of wrapping ({"Case": {...}}) as the XML answer has.
    if not isinstance(case, dict):
        return None
    for key in CASE_ID_KEYS:
        value = case.get(key)
        if value not in (None, ""):
            return str(value)
    for inner in case.values():
        if isinstance(inner, dict):
            found = _case_id(inner)
            if found is not None:
                return found
    return None
