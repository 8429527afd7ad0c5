"""The sandbox's endpoints against the real server over loopback: tokens, writes, reads."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from loader.sandbox import Sandbox, SandboxConfig, Store
from loader.sandbox.testing import JWT_BEARER, assertion, client, token_answer


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    store = tmp_path_factory.mktemp("sandbox") / "store.sqlite"
    with Sandbox(SandboxConfig(store=store)) as running:
        yield running


@pytest.fixture(scope="module")
def api(sb: Sandbox) -> Iterator[httpx2.Client]:
    with client(sb) as c:
        yield c


def error(answer: httpx2.Response) -> tuple[int, str | None, str | None]:
    return (
        answer.status_code,
        answer.headers.get("X-Application-Error-Code"),
        answer.headers.get("X-Application-Error-Info"),
    )


# -- token ---------------------------------------------------------------------------


def test_token_good(sb: Sandbox) -> None:
    answer = token_answer(sb, assertion(sb))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 40


@pytest.mark.parametrize(
    ("claims", "secret"),
    [
        ({}, "not-the-secret"),  # bad signature
        ({"iss": "unknown-key"}, None),
        ({"aud": "http://elsewhere/token?db=demo"}, None),
        ({"iat": int(time.time()) - 1000}, None),  # outside the ±300 s skew
        ({"iat": int(time.time()) + 1000}, None),
    ],
)
def test_token_refused(sb: Sandbox, claims: dict[str, object], secret: str | None) -> None:
    answer = token_answer(sb, assertion(sb, secret=secret, **claims))
    assert error(answer) == (400, "19002", "invalid_grant")
    assert "text/html" in answer.headers["content-type"]


def test_token_wrong_db_is_200_and_empty(sb: Sandbox) -> None:
    answer = token_answer(sb, assertion(sb), db="other")
    assert (answer.status_code, answer.content) == (200, b"")


def test_token_wrong_grant_type(sb: Sandbox) -> None:
    answer = httpx2.post(f"{sb.base}/token?db=demo", data={"grant_type": "password"})
    assert error(answer) == (400, "19002", "unsupported_grant_type")


def test_token_expires(tmp_path: Path) -> None:
    config = SandboxConfig(token_ttl=1, store=tmp_path / "s.sqlite")
    with Sandbox(config) as short, client(short) as c:
        assert c.get("/getvaluelist", params={"Name": "RequestMethod"}).status_code == 200
        time.sleep(1.1)  # the feature under test is time itself: a 1-second token
        answer = c.get("/getvaluelist", params={"Name": "RequestMethod"})
    assert error(answer) == (403, "9021", "Invalid token")


@pytest.mark.parametrize(
    ("endpoint", "method", "code"),
    [("getreport", "GET", "8021"), ("createcase", "POST", "2021"), ("updatecase", "POST", "11021")],
)
def test_missing_or_unknown_token_is_403(
    sb: Sandbox, endpoint: str, method: str, code: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        answer = httpx2.request(method, f"{sb.base}/{endpoint}?db=demo", headers=headers)
        assert error(answer) == (403, code, "Invalid token")


def test_access_token_query_parameter(sb: Sandbox) -> None:
    access = token_answer(sb, assertion(sb)).json()["access_token"]
    answer = httpx2.get(
        f"{sb.base}/getvaluelist", params={"db": "demo", "access_token": access, "Name": "CaseType"}
    )
    assert answer.status_code == 200


def test_token_for_another_db_is_refused(sb: Sandbox, api: httpx2.Client) -> None:
    answer = api.get("/getvaluelist", params={"db": "other", "Name": "CaseType"})
    assert error(answer) == (403, "9021", "Invalid token")


# -- createcase ----------------------------------------------------------------------


def test_createcase_json_stores_every_field(sb: Sandbox, api: httpx2.Client) -> None:
    payload = {
        "Type": "Complaint", "ExternalId": "CC-1", "RequestMethod": "Phone",
        "RequestDate": "2021-03-04T10:20:15", "Customer.Id": "CUST-1",
        "Customer.Surname": "Smith", "Details": "Bins", "Document1.Name": "a.pdf",
        "Document1.URL": "https://example.org/a.pdf", "Format": "json",
    }  # fmt: skip
    answer = api.post("/createcase", json=payload)
    assert answer.status_code == 200
    case_id = answer.json()["createcaseresponse"]["caseid"]
    case = sb.store.case(case_id)
    assert case["external_id"] == "CC-1"
    assert case["received"] == "2021-03-04T10:20:15"
    assert case["fields"]["Details"] == "Bins"
    assert case["fields"]["Document1.URL"] == "https://example.org/a.pdf"
    assert "Format" not in case["fields"]
    customer = sb.store.customer("CUST-1")
    assert customer is not None and customer["fields"]["Surname"] == "Smith"


def test_createcase_form_body_answers_xml_by_default(sb: Sandbox, api: httpx2.Client) -> None:
    answer = api.post("/createcase", data={"Type": "Enquiry", "ExternalId": "CC-XML"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    case_id = sb.store.find_cases(external_id="CC-XML")[0]["case_id"]
    assert f"<createcaseresponse><caseid>{case_id}</caseid></createcaseresponse>" in answer.text


def test_customer_id_upserts_the_customer(sb: Sandbox, api: httpx2.Client) -> None:
    for surname in ("Jones", "Brown"):
        base = {"Type": "Complaint", "Customer.Id": "CUST-UP", "Format": "json"}
        assert api.post("/createcase", json={**base, "Customer.Surname": surname}).is_success
    customer = sb.store.customer("CUST-UP")
    assert customer is not None and customer["fields"]["Surname"] == "Brown"


def test_duplicate_external_ids_are_accepted(sb: Sandbox, api: httpx2.Client) -> None:
    ids = [
        api.post(
            "/createcase", json={"Type": "Complaint", "ExternalId": "DUP", "Format": "json"}
        ).json()["createcaseresponse"]["caseid"]
        for _ in range(2)
    ]
    assert ids[0] != ids[1]
    assert sb.store.cases_by_external_id()["DUP"] == 2
    details = api.get("/getcasedetails", params={"ExternalId": "DUP", "Format": "json"})
    decoder, text, found = json.JSONDecoder(), details.text, []
    while text:
        obj, end = decoder.raw_decode(text)
        found.append(obj["CaseDetails.CaseId"])
        text = text[end:]
    assert found == ids
    assert details.text.startswith("{") and "}{" in details.text


@pytest.mark.parametrize(
    ("payload", "code", "info"),
    [
        ({"ExternalId": "X"}, "2003", "Required parameter Type was not supplied."),
        ({"Type": "Complain"}, "2004", "Invalid case type 'Complain'"),
        ({"Type": "Complaint", "RequestMethod": "Fax"}, "2004",
         "Invalid value 'Fax' for RequestMethod"),
        ({"Type": "Complaint", "RequestDate": "31/12/2020"}, "2004",
         "Invalid value '31/12/2020' for RequestDate (expected YYYY-MM-DDThh:mm:ss)"),
        ({"Type": "Complaint", "ExternalAccountType": "XX"}, "2004",
         "Invalid account type 'XX'"),
        ({"Type": "Complaint", "Document2.Name": "b.pdf"}, "2003",
         "Required parameter Document2.URL was not supplied."),
        ({"Type": "Complaint", "Customer": {"Surname": "x"}}, "2006",
         "Invalid value for Customer: send flat dotted names, not nested values"),
        ({"Type": "Complaint", "Format": "yaml"}, "2099", "Invalid value 'yaml' for Format"),
    ],
)  # fmt: skip
def test_createcase_refusals(
    sb: Sandbox, api: httpx2.Client, payload: dict[str, object], code: str, info: str
) -> None:
    before = sb.store.case_count()
    answer = api.post("/createcase", json=payload)
    assert error(answer) == (400, code, info)
    assert "An Unexpected Error Occured" in answer.text
    assert sb.store.case_count() == before


def test_wrong_method_and_unreadable_json(api: httpx2.Client) -> None:
    assert error(api.get("/createcase")) == (400, "2000", "Invalid HTTP Method.")
    assert error(api.post("/getreport", data={"ReportId": "1"}))[:2] == (400, "8000")
    bad = api.post("/createcase", content=b"{nope", headers={"content-type": "application/json"})
    assert error(bad)[:2] == (400, "2006")
    assert api.get("/nosuchendpoint").status_code == 404


def test_request_id_sets_the_case_id_once(api: httpx2.Client) -> None:
    body = {"Type": "Complaint", "RequestId": "900001", "Format": "json"}
    assert api.post("/createcase", json=body).json()["createcaseresponse"]["caseid"] == "900001"
    assert error(api.post("/createcase", json=body)) == (
        400, "2005", "Case 900001 already exists (RequestId)",
    )  # fmt: skip


# -- accounts, customers, cases, notes ----------------------------------------------


def test_accounts(sb: Sandbox, api: httpx2.Client) -> None:
    body = {"Type": "CTAX", "ExternalAccountId": "AC-1", "Balance": "10.00", "Format": "json"}
    created = api.post("/createaccount", json=body)
    account_id = created.json()["createaccountresponse"]["accountid"]
    assert error(api.post("/createaccount", json=body)) == (
        400, "3005", "Account CTAX AC-1 already exists",
    )  # fmt: skip
    updated = api.post("/updateaccount", json={**body, "Balance": "20.00"})
    assert updated.json() == {"updateaccountresponse": {"accountid": account_id}}
    assert sb.store.find_account("CTAX", "AC-1")["fields"]["Balance"] == "20.00"  # type: ignore[index]  # found above
    assert error(api.post("/updateaccount", json={**body, "ExternalAccountId": "AC-404"})) == (
        400, "4002", "Unable to identify account",
    )  # fmt: skip
    assert error(api.post("/createaccount", json={**body, "Type": "GAS"}))[:2] == (400, "3004")
    assert error(api.post("/updateaccount", json={**body, "StartDate": "2021-13-01"})) == (
        400, "4004", "Invalid value '2021-13-01' for StartDate (expected YYYY-MM-DD)",
    )  # fmt: skip


def test_updatecustomer_upserts_and_rekeys(sb: Sandbox, api: httpx2.Client) -> None:
    answer = api.post("/updatecustomer", json={"Id": "K1", "Surname": "Ng", "City": "Leeds",
                                               "Format": "json"})  # fmt: skip
    assert answer.json() == {"updatecustomerresponse": {"id": "K1"}}
    api.post("/createcase", json={"Type": "Complaint", "Customer.Id": "K1", "ExternalId": "K"})
    answer = api.post("/updatecustomer", json={"Id": "K1", "NewId": "K2", "Format": "json"})
    assert answer.json() == {"updatecustomerresponse": {"id": "K2"}}
    customer = sb.store.customer("K2")
    assert customer is not None and customer["fields"] == {"Surname": "Ng", "Town": "Leeds"}
    assert sb.store.customer("K1") is None
    assert sb.store.find_cases(external_id="K")[0]["customer_id"] == "K2"
    api.post("/updatecustomer", json={"Id": "K3"})
    assert error(api.post("/updatecustomer", json={"Id": "K3", "NewId": "K2"}))[:2] == (
        400, "5005",
    )  # fmt: skip
    assert error(api.post("/updatecustomer", json={"Surname": "x"})) == (
        400, "5003", "Required parameter Id was not supplied.",
    )  # fmt: skip


def test_updatecase_and_notes(sb: Sandbox, api: httpx2.Client) -> None:
    api.post("/createcase", json={"Type": "Complaint", "ExternalId": "UPD-1"})
    answer = api.post("/updatecase", json={"ExternalId": "UPD-1", "Status": "Closed",
                                           "Outcome": "Upheld", "Format": "json"})  # fmt: skip
    case_id = answer.json()["updatecaseresponse"]["caseid"]
    case = sb.store.case(case_id)
    assert (case["status"], case["fields"]["Outcome"]) == ("Closed", "Upheld")
    note = api.post("/createcasenotes", json={"CaseId": case_id, "Note": "Called back",
                                              "Format": "json"})  # fmt: skip
    assert "noteid" in note.json()["createcasenotesresponse"]
    assert sb.store.notes()[-1]["fields"]["Note"] == "Called back"
    missing = api.post("/updatecase", json={"ExternalId": "NOPE", "Status": "Closed"})
    assert error(missing) == (400, "11002", "Unable to identify case")
    assert error(api.post("/createcasenotes", json={"CaseId": case_id}))[:2] == (400, "6003")


# -- reads ---------------------------------------------------------------------------


def test_getcasedetails(sb: Sandbox, api: httpx2.Client) -> None:
    created = api.post("/createcase", json={"Type": "FOI request", "ExternalId": "GCD-1",
                                            "Customer.Id": "G1", "Format": "json"})  # fmt: skip
    case_id = created.json()["createcaseresponse"]["caseid"]
    by_id = api.get("/getcasedetails", params={"CaseId": case_id, "Format": "json"}).json()
    assert by_id["CaseDetails.CaseId"] == case_id
    assert by_id["CaseDetails.ExternalId"] == "GCD-1"
    assert by_id["CaseDetails.CaseType"] == "FOI request"
    assert by_id["MainParty.Reference"] == "G1"
    xml = api.get("/getcasedetails", params={"ExternalId": "GCD-1"})
    assert f"<CaseDetails.CaseId>{case_id}</CaseDetails.CaseId>" in xml.text
    assert xml.text.count("<Case>") == 1
    missing = api.get("/getcasedetails", params={"ExternalId": "NONE", "Format": "json"})
    assert error(missing) == (400, "10002", "Unable to identify case")


def test_getvaluelist(api: httpx2.Client) -> None:
    answer = api.get("/getvaluelist", params={"Name": "RequestMethod", "Format": "json"})
    assert answer.json()["getvaluelistresponse"]["values"] == [
        "Email", "Phone", "Web", "Letter", "In person", "Social media",
    ]  # fmt: skip
    types = api.get("/getvaluelist", params={"Name": "AccountType", "Format": "json"})
    assert types.json()["getvaluelistresponse"]["values"] == ["CTAX", "NNDR", "HB", "RENT"]
    assert error(api.get("/getvaluelist", params={"Name": "Nope"}))[:2] == (400, "9002")


@pytest.fixture(scope="module")
def report_sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, httpx2.Client]]:
    store = tmp_path_factory.mktemp("report") / "store.sqlite"
    with Sandbox(SandboxConfig(store=store)) as running, client(running) as c:
        for n, day in enumerate(["2020-01-15", "2020-02-15", "2020-03-15"], start=1):
            payload = {"Type": "Complaint", "ExternalId": f"R-{n}", "Details": "a, b",
                       "RequestDate": f"{day}T09:00:00", "Customer.Id": f"P{n}",
                       "Customer.Surname": f"S{n}"}  # fmt: skip
            c.post("/createcase", json=payload)
        yield running, c


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({}, ["R-1", "R-2", "R-3"]),
        ({"From": "2020-02-15"}, ["R-2", "R-3"]),
        ({"Until": "2020-02-15"}, ["R-1", "R-2"]),
        ({"FromTime": "2020-02-15 09:00:01", "Until": "2020-12-31"}, ["R-3"]),
    ],
)
def test_getreport_json_and_window(
    report_sb: tuple[Sandbox, httpx2.Client], params: dict[str, str], ids: list[str]
) -> None:
    _, c = report_sb
    rows = c.get("/getreport", params={"ReportId": "1", "Format": "json", **params}).json()
    assert [row["CaseDetails.ExternalId"] for row in rows] == ids
    for key in ("CaseDetails.CaseId", "CaseDetails.CaseType", "CaseStatusReceipt.DateReceived",
                "Customer.Reference", "Customer.Surname", "Details"):  # fmt: skip
        assert key in rows[0]


def test_getreport_csv_options(report_sb: tuple[Sandbox, httpx2.Client]) -> None:
    _, c = report_sb
    answer = c.get("/getreport", params={
        "ReportId": "1", "Format": "csv", "CSVHeader": "yes", "CSVFooter": "true",
        "CSVDelimitor": ";", "CSVFields": "casedetails.externalid,Details,Customer.Surname",
    })  # fmt: skip
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text == (
        "CaseDetails.ExternalId;Details;Customer.Surname\r\n"
        "R-1;a, b;S1\r\nR-2;a, b;S2\r\nR-3;a, b;S3\r\nRows: 3\r\n"
    )
    plain = c.get("/getreport", params={"ReportId": "1", "Format": "csv"})
    rows = list(csv.reader(io.StringIO(plain.text)))
    assert len(rows) == 3 and rows[0][1] == "R-1"


def test_getreport_xml_and_gzip(report_sb: tuple[Sandbox, httpx2.Client]) -> None:
    sb, c = report_sb
    xml = c.get("/getreport", params={"ReportId": "1"})
    assert xml.text.count("<Row>") == 3
    assert "<CaseDetails.ExternalId>R-2</CaseDetails.ExternalId>" in xml.text
    raw = httpx2.get(
        f"{sb.base}/getreport",
        params={"db": "demo", "ReportId": "1", "Format": "json", "Compression": "gzip"},
        headers={"Authorization": c.headers["Authorization"], "Accept-Encoding": "identity"},
    )
    assert raw.headers["content-encoding"] == "gzip"
    assert len(raw.json()) == 3  # httpx2 decodes Content-Encoding: gzip itself
    assert int(raw.headers["content-length"]) < len(raw.content)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (400, "8003", "Required parameter ReportId was not supplied.")),
        ({"ReportId": "77"}, (400, "8051", "Report 77 not found")),
        ({"ReportId": "1", "From": "15/01/2020"},
         (400, "8099", "Invalid value '15/01/2020' for From (expected YYYY-MM-DD)")),
        ({"ReportId": "1", "Format": "pdf"}, (400, "8099", "Invalid value 'pdf' for Format")),
    ],
)  # fmt: skip
def test_getreport_errors(
    report_sb: tuple[Sandbox, httpx2.Client], params: dict[str, str], expected: tuple[object, ...]
) -> None:
    _, c = report_sb
    assert error(c.get("/getreport", params=params)) == expected


# -- uploaddata ----------------------------------------------------------------------


def upload(c: httpx2.Client, kind: str, text: str) -> httpx2.Response:
    return c.post(
        "/uploaddata",
        params={"Type": kind, "Format": "json"},
        content=text.encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )


def test_uploaddata_customers_are_idempotent(sb: Sandbox, api: httpx2.Client) -> None:
    text = "Id,FirstName,Surname\nU-1,Ann,Lee\nU-2,Bo,Ray\n"
    first = upload(api, "customers", text).json()["uploaddataresponse"]
    again = upload(api, "customers", text).json()["uploaddataresponse"]
    assert (first["created"], first["updated"]) == (2, 0)
    assert (again["created"], again["updated"]) == (0, 2)
    assert sb.store.customer("U-2") is not None


def test_uploaddata_accounts_upsert(sb: Sandbox, api: httpx2.Client) -> None:
    text = "Type,ExternalAccountId,Balance\nHB,UA-1,5\nHB,UA-1,6\nGAS,UA-2,1\n"
    answer = upload(api, "accounts", text).json()["uploaddataresponse"]
    assert [r["status"] for r in answer["results"]] == ["created", "updated", "rejected"]
    assert sb.store.find_account("HB", "UA-1")["fields"]["Balance"] == "6"  # type: ignore[index]  # created above


def test_uploaddata_cases_results_per_row(sb: Sandbox, api: httpx2.Client) -> None:
    text = "Type,ExternalId,RequestMethod\nComplaint,UP-1,Web\nComplain,UP-2,Web\n\nEnquiry,,Web\n"
    answer = upload(api, "cases", text).json()["uploaddataresponse"]
    case_id = sb.store.find_cases(external_id="UP-1")[0]["case_id"]
    assert answer == {
        "type": "cases", "rows": 3, "created": 1, "updated": 0, "rejected": 2,
        "results": [
            {"row": 1, "status": "created", "id": str(case_id), "code": "", "info": ""},
            {"row": 2, "status": "rejected", "id": "", "code": "7004",
             "info": "Invalid case type 'Complain'"},
            {"row": 4, "status": "rejected", "id": "", "code": "7003",
             "info": "Required parameter ExternalId was not supplied."},
        ],
    }  # fmt: skip
    upload(api, "cases", "Type,ExternalId\nComplaint,UP-1\n")  # not idempotent
    assert sb.store.cases_by_external_id()["UP-1"] == 2


@pytest.mark.parametrize(
    ("text", "info"),
    [
        ("", "The CSV file is empty"),
        ("Type,ExternalId\n", "The CSV file has no data rows"),
        ("Type,Type\nComplaint,Complaint\n", "Duplicate column 'Type' in the header"),
        ("Type,ExternalId\n" + "Complaint,X\n" * 5001,
         "Too many rows: 5001 data rows, at most 5000 per upload"),
    ],
)  # fmt: skip
def test_uploaddata_refuses_the_file(sb: Sandbox, api: httpx2.Client, text: str, info: str) -> None:
    before = sb.store.case_count()
    assert error(upload(api, "cases", text)) == (400, "7006", info)
    assert sb.store.case_count() == before


def test_uploaddata_unknown_type(api: httpx2.Client) -> None:
    assert error(upload(api, "tasks", "Id\n1\n"))[:2] == (400, "7004")


# -- store and request log -----------------------------------------------------------


def test_request_log_and_reopened_store(sb: Sandbox, api: httpx2.Client) -> None:
    before = sb.store.count_requests(endpoint="getvaluelist", status=200)
    api.get("/getvaluelist", params={"Name": "CaseType"})
    assert sb.store.count_requests(endpoint="getvaluelist", status=200) == before + 1
    last = sb.store.requests()[-1]
    assert {k: last[k] for k in ("method", "endpoint", "status", "fault")} == {
        "method": "GET", "endpoint": "getvaluelist", "status": 200, "fault": None,
    }  # fmt: skip
    assert last["duration_ms"] >= 0 and last["time"].endswith("+00:00")
    reopened = Store(sb.store_path)
    assert reopened.case_count() == sb.store.case_count()
    reopened.close()


def test_tokens_and_secrets_never_reach_the_store(sb: Sandbox, api: httpx2.Client) -> None:
    access = api.headers["Authorization"].split()[1]
    api.get("/getvaluelist", params={"Name": "CaseType", "access_token": access})
    sb.store.case_count()  # reads go through the WAL; check every file of the store
    files = [p for p in sb.store_path.parent.iterdir() if p.name.startswith("store.sqlite")]
    for path in files:
        data = path.read_bytes()
        assert access.encode() not in data
        assert sb.config.api_secret.encode() not in data
    assert "sandbox-secret" not in repr(sb.config)


def test_form_token_request_is_what_the_client_sends(sb: Sandbox) -> None:
    answer = httpx2.post(
        f"{sb.base}/token?db=demo",
        content=f"grant_type={JWT_BEARER}&assertion={assertion(sb)}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
