"""The sandbox's raw ASGI application: routing, the token endpoint, auth, faults, logging.

A request goes through these steps, in this order (each may end it):

1. read the body; wait `latency_ms` ± `jitter_ms`;
2. `/token` is answered here (never rate limited, never failed or dropped);
3. an unknown path → 404;
4. the token bucket (when `rate` is set) → 429 `Retry-After`, code N029;
5. a write endpoint draws `fail_rate` → `fail_status` before anything is applied
   (503 carries `Retry-After: 0`: retry at once; any other 5xx carries none);
6. the access token (header or `access_token` parameter) → 403 N021 `Invalid token`;
7. the HTTP method → 400 N000; the body and `Format` → 400 N006 / N099;
8. the handler runs and the request-log line is written, in one savepoint of the
   transaction the app commits once per event-loop turn; no answer leaves before the
   commit that holds its change;
9. a write endpoint draws `drop_rate`: the change is committed, then the connection is
   closed with no answer at all.

With `rate` set, every answer carries `x-ratelimit-remaining`, `-replenish-rate`,
`-burst-capacity` and `-requested-tokens` (0 on `/token`, which takes no token).

Endpoint code blocks (`N` in the codes above); `inferred` marks the sandbox's own choice
where no vendor page gives one:

| endpoint        | method | block  | source |
|-----------------|--------|--------|--------|
| createcase      | POST   | 2000   | inferred |
| createaccount   | POST   | 3000   | inferred |
| updateaccount   | POST   | 4000   | inferred |
| updatecustomer  | POST   | 5000   | inferred |
| createcasenotes | POST   | 6000   | inferred |
| uploaddata      | POST   | 7000   | inferred |
| getreport       | GET    | 8000   | seed 001 |
| getvaluelist    | GET    | 9000   | inferred |
| getcasedetails  | GET    | 10000  | inferred |
| updatecase      | POST   | 11000  | fact sheet |
| token           | POST   | 19000  | fact sheet (19002 invalid_grant) |
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jwt

from loader.sandbox import reads, uploads, writes
from loader.sandbox.answers import (
    HTML_TYPE,
    INVALID_METHOD,
    INVALID_TOKEN,
    JSON_TYPE,
    RATE_LIMITED,
    UNREADABLE,
    VARIOUS,
    Answer,
    ApiError,
    Call,
    Context,
    bad_request,
    error_answer,
)
from loader.sandbox.config import SandboxConfig
from loader.sandbox.faults import Dice, TokenBucket
from loader.sandbox.store import Store
from loader.sandbox.tenant import Tenant

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The ASGI scope extension the sandbox's HTTP protocol adds (see server.py): a callable
# `{"close": callable}` that closes the connection without an answer.
DROP_EXTENSION = "loader.sandbox.drop"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_BLOCK = 19000
INVALID_GRANT = 19002
IAT_SKEW = 300  # seconds the assertion's iat may differ from the server's clock
MAX_BODY = 64 * 1024 * 1024

Handler = Callable[[Call, Context], Answer]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    block: int
    handler: Handler
    write: bool


ENDPOINTS: dict[str, Endpoint] = {
    "createcase": Endpoint("POST", 2000, writes.createcase, True),
    "createaccount": Endpoint("POST", 3000, writes.createaccount, True),
    "updateaccount": Endpoint("POST", 4000, writes.updateaccount, True),
    "updatecustomer": Endpoint("POST", 5000, writes.updatecustomer, True),
    "createcasenotes": Endpoint("POST", 6000, writes.createcasenotes, True),
    "uploaddata": Endpoint("POST", 7000, uploads.uploaddata, True),
    "getreport": Endpoint("GET", 8000, reads.getreport, False),
    "getvaluelist": Endpoint("GET", 9000, reads.getvaluelist, False),
    "getcasedetails": Endpoint("GET", 10000, reads.getcasedetails, False),
    "updatecase": Endpoint("POST", 11000, writes.updatecase, True),
}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    endpoint: str
    scheme: str
    host: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    answer: Answer
    drop: bool = False


class SandboxApp:
    """The ASGI callable. One instance per server; all state lives on its event loop."""

    def __init__(self, config: SandboxConfig, store: Store, tenant: Tenant) -> None:
        self.config = config
        self.context = Context(store=store, tenant=tenant)
        self.bucket = TokenBucket(config.rate, config.bucket_size) if config.rate else None
        self.dice = Dice(config.seed)
        self._tokens: dict[str, float] = {}  # access token → expiry (monotonic seconds)
        self._batch: asyncio.Future[None] | None = None  # the open transaction's commit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        body = await _read_body(receive)
        delay = self.dice.delay(self.config.latency_ms, self.config.jitter_ms)
        if delay:
            await asyncio.sleep(delay)
        request = _request(scope, body)
        batch = self._open_batch()
        outcome = self.dispatch(request, started)
        # No answer (and no drop) before the commit that holds this request's change.
        await asyncio.shield(batch)
        if outcome.drop:
            scope["extensions"][DROP_EXTENSION]["close"]()
            # Wait for the transport to report the close, so that the server does not
            # step in with a 500 of its own for a request it thinks went unanswered.
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        answer = outcome.answer
        headers = [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
            *((name.lower().encode(), value.encode("latin-1")) for name, value in answer.headers),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def dispatch(self, request: Request, started: float) -> Outcome:
        """Answer one request and log it; everything here runs without yielding the loop."""
        store = self.context.store
        endpoint = ENDPOINTS.get(request.endpoint)
        drop = False
        fault: str | None = None
        limits: tuple[tuple[str, str], ...] = ()
        if request.endpoint == "token":
            if self.bucket is not None:
                limits = self.bucket.headers(self.bucket.peek(), 0)
            answer = self._token(request)
        elif endpoint is None:
            answer = error_answer(404, None, None, f"No endpoint {request.endpoint!r}")
        else:
            if self.bucket is not None:
                decision = self.bucket.take()
                limits = self.bucket.headers(decision.remaining, 1)
                if not decision.allowed:
                    limits = (*limits, ("Retry-After", str(decision.retry_after)))
                    fault = "rate"
            if fault is None and endpoint.write and self.dice.fail(self.config.fail_rate):
                fault = "fail"
            drop = endpoint.write and fault is None and self.dice.drop(self.config.drop_rate)
            try:
                if fault == "rate":
                    raise ApiError(429, endpoint.block + RATE_LIMITED, "Rate limit exceeded")
                if fault == "fail":
                    answer = self._failure()
                else:
                    self._check(request, endpoint)
                    call = _call(request, endpoint)
                    with store.savepoint():
                        answer = endpoint.handler(call, self.context)
                        answer = _with(answer, limits)
                        self._log(request, answer, started, "drop" if drop else None, drop)
                    return Outcome(answer, drop)
            except ApiError as err:
                answer = err.answer()
        answer = _with(answer, limits)
        self._log(request, answer, started, fault, False)
        return Outcome(answer)

    def _open_batch(self) -> asyncio.Future[None]:
        """The turn's transaction: opened by its first request, committed at the turn's end."""
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self.context.store.begin()
            self._batch = loop.create_future()
            loop.call_soon(self._commit)
        return self._batch

    def _commit(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            self.context.store.commit()
        except sqlite3.Error as exc:
            batch.set_exception(exc)
        else:
            batch.set_result(None)

    def _log(
        self, request: Request, answer: Answer, started: float, fault: str | None, dropped: bool
    ) -> None:
        self.context.store.log_request(
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            method=request.method,
            endpoint=request.endpoint[:64],
            status=None if dropped else answer.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            error_code=answer.error_code,
            fault=fault,
        )

    def _failure(self) -> Answer:
        status = self.config.fail_status
        extra = (("Retry-After", "0"),) if status == 503 else ()
        return error_answer(
            status, None, None, "The service is unavailable (sandbox fault).", extra
        )

    def _check(self, request: Request, endpoint: Endpoint) -> None:
        if not self._authorised(request):
            raise ApiError(403, endpoint.block + INVALID_TOKEN, "Invalid token")
        if request.method != endpoint.method:
            raise bad_request(endpoint.block, INVALID_METHOD, "Invalid HTTP Method.")

    def _authorised(self, request: Request) -> bool:
        if request.query.get("db") != self.config.account:
            return False  # tokens belong to the account; another db cannot use them
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = request.query.get("access_token", "")
        expiry = self._tokens.get(token.strip())
        if expiry is None:
            return False
        if expiry <= time.monotonic():
            del self._tokens[token.strip()]
            return False
        return True

    def _token(self, request: Request) -> Answer:
        if request.method not in ("POST", "GET"):
            return bad_request(TOKEN_BLOCK, INVALID_METHOD, "Invalid HTTP Method.").answer()
        if request.query.get("db") != self.config.account:
            return Answer(200, b"", HTML_TYPE)  # what the real service does for a wrong db
        form = dict(request.query)
        if request.method == "POST":
            form.update(parse_qsl(request.body.decode("utf-8", "replace")))
        if form.get("grant_type") != JWT_BEARER:
            return error_answer(400, str(INVALID_GRANT), "unsupported_grant_type",
                                f"grant_type must be {JWT_BEARER}")  # fmt: skip
        reason = self._refuse_assertion(request, form.get("assertion", ""))
        if reason is not None:
            return error_answer(400, str(INVALID_GRANT), "invalid_grant", reason)
        if len(self._tokens) > 10_000:
            moment = time.monotonic()
            self._tokens = {t: e for t, e in self._tokens.items() if e > moment}
        access_token = secrets.token_urlsafe(32)
        self._tokens[access_token] = time.monotonic() + self.config.token_ttl
        payload = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.config.token_ttl,
        }
        return Answer(200, json.dumps(payload).encode(), JSON_TYPE)

    def _refuse_assertion(self, request: Request, assertion: str) -> str | None:
        """Why the assertion is refused (shown in the HTML body), or None when it is good."""
        if not assertion:
            return "assertion is missing"
        audience = f"{request.scheme}://{request.host}/token?db={self.config.account}"
        try:
            # A short secret (the default "sandbox-secret") is the user's choice, not a
            # fault of the request: PyJWT's key-length warning would only be noise here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                claims = jwt.decode(
                    assertion,
                    self.config.api_secret,
                    algorithms=["HS256"],
                    audience=audience,
                    issuer=self.config.api_key,
                    leeway=IAT_SKEW,
                    options={"require": ["iss", "aud", "iat"]},
                )
        except jwt.InvalidAudienceError:
            return f"aud must be exactly {audience}"
        except jwt.InvalidTokenError as exc:
            return f"the assertion is refused: {exc}"
        if abs(time.time() - float(claims["iat"])) > IAT_SKEW:
            return f"iat is more than {IAT_SKEW} s away from the server's clock"
        return None


def _with(answer: Answer, extra: tuple[tuple[str, str], ...]) -> Answer:
    if not extra:
        return answer
    return Answer(answer.status, answer.body, answer.content_type, (*answer.headers, *extra))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY + 1:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _request(scope: Scope, body: bytes) -> Request:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    query = dict(
        parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    )
    server = scope.get("server") or ("localhost", None)
    default_host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    return Request(
        method=scope["method"],
        endpoint=scope["path"].strip("/"),
        scheme=scope.get("scheme", "http"),
        host=headers.get("host", default_host),
        query=query,
        headers=headers,
        body=body,
    )


def _call(request: Request, endpoint: Endpoint) -> Call:
    """The request's parameters: query, then the body (JSON or form) over it."""
    block = endpoint.block
    if len(request.body) > MAX_BODY:
        raise bad_request(block, UNREADABLE, "The request body is too large")
    params = {k: v for k, v in request.query.items() if k not in ("db", "access_token")}
    content_type = request.headers.get("content-type", "").lower()
    if request.body and endpoint.handler is not uploads.uploaddata:
        params.update(_body_params(request.body, content_type, block))
    fmt = params.get("Format", "xml").lower() or "xml"
    allowed = ("xml", "json", "csv") if endpoint.handler is reads.getreport else ("xml", "json")
    if fmt not in allowed:
        raise bad_request(block, VARIOUS, f"Invalid value '{params['Format']}' for Format")
    return Call(
        method=request.method,
        endpoint=request.endpoint,
        block=block,
        params=params,
        format=fmt,
        body=request.body,
        content_type=content_type,
    )


def _body_params(body: bytes, content_type: str, block: int) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(block, UNREADABLE, "The request body is not UTF-8") from exc
    if "json" not in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise bad_request(block, UNREADABLE, f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise bad_request(block, UNREADABLE, "The JSON body must be an object of flat names")
    params: dict[str, str] = {}
    for name, value in document.items():
        if isinstance(value, dict | list):
            info = f"Invalid value for {name}: send flat dotted names, not nested values"
            raise bad_request(block, UNREADABLE, info)
        if value is None:
            continue
        params[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return params
