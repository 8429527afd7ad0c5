from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx2
import jwt
import pytest

from loader.auth import RELAPSE_WINDOW, Credentials, ICaseworkJWT, TokenProvider
from loader.errors import AuthError, TargetError

TOKEN_URL = "https://uat.icasework.com/token?db=acme"
KEY = "key-0123456789abcdef"
SECRET = "secret-never-shown-0123456789abcdef"  # 32+ bytes: PyJWT warns below
CREDS = Credentials(KEY, SECRET)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """A token endpoint as a MockTransport handler: counts requests, issues t1, t2, ..."""

    def __init__(self, ttl: int = 3600) -> None:
        self.ttl = ttl
        self.requests: list[httpx2.Request] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        await asyncio.sleep(0)  # let concurrent callers pile up behind the first one
        body = {
            "access_token": f"t{len(self.requests)}",
            "token_type": "Bearer",
            "expires_in": self.ttl,
        }
        return httpx2.Response(200, json=body)


def run(
    handler: Callable[[httpx2.Request], Any], coro_fn: Callable[[httpx2.AsyncClient], Any]
) -> Any:
    async def main() -> Any:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
            return await coro_fn(client)

    return asyncio.run(main())


def provider(clock: Clock | None = None) -> ICaseworkJWT:
    return ICaseworkJWT(TOKEN_URL, CREDS, clock=clock or Clock())


def test_credentials_never_show_the_secret_nor_the_whole_key() -> None:
    for text in (repr(CREDS), str(CREDS), repr(provider())):
        assert SECRET not in text and KEY not in text
        assert "key-…" in text
    assert repr(CREDS) == "Credentials(api_key='key-…', api_secret='***')"
    assert repr(Credentials("short", "s")) == "Credentials(api_key='…', api_secret='***')"


def test_credentials_from_env() -> None:
    env = {"LOADER_API_KEY": KEY, "LOADER_API_SECRET": SECRET}
    assert Credentials.from_env(env) == CREDS


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {},
            "LOADER_API_KEY and LOADER_API_SECRET are not set: set LOADER_API_KEY and "
            "LOADER_API_SECRET to the API key pair from the target's administration screens",
        ),
        (
            {"LOADER_API_KEY": KEY},
            "LOADER_API_SECRET is not set: set LOADER_API_KEY and LOADER_API_SECRET "
            "to the API key pair from the target's administration screens",
        ),
        (
            {"LOADER_API_KEY": "", "LOADER_API_SECRET": SECRET},
            "LOADER_API_KEY is not set: set LOADER_API_KEY and LOADER_API_SECRET "
            "to the API key pair from the target's administration screens",
        ),
    ],
)
def test_credentials_from_env_says_which_variable_to_set(env: dict[str, str], message: str) -> None:
    with pytest.raises(AuthError) as info:
        Credentials.from_env(env)
    assert str(info.value) == message


def test_token_request_is_the_jwt_bearer_grant() -> None:
    server = TokenServer()
    clock = Clock()
    token = run(server, provider(clock).token)
    assert token == "t1"
    (request,) = server.requests
    assert request.method == "POST" and str(request.url) == TOKEN_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assertion = form["assertion"]
    assert jwt.get_unverified_header(assertion)["alg"] == "HS256"
    claims = jwt.decode(
        assertion,
        SECRET,
        algorithms=["HS256"],
        audience=TOKEN_URL,
        options={"verify_iat": False, "verify_exp": False},
    )
    assert claims == {"iss": KEY, "aud": TOKEN_URL, "iat": 1_700_000_000, "exp": 1_700_003_600}


@pytest.mark.parametrize(
    ("ttl", "margin", "still_cached", "refreshed"),
    [
        (3600, 300.0, 3299.0, 3300.0),  # refresh five minutes before expiry
        (5, 300.0, 3.9, 4.0),  # a 5-second test token: margin capped to a fifth of it
        (600, 30.0, 569.0, 570.0),
    ],
)
def test_token_is_cached_until_expiry_minus_margin(
    ttl: int, margin: float, still_cached: float, refreshed: float
) -> None:
    server = TokenServer(ttl)
    clock = Clock()
    p = ICaseworkJWT(TOKEN_URL, CREDS, clock=clock, refresh_margin=margin)
    start = clock.now

    async def scenario(client: httpx2.AsyncClient) -> list[str]:
        got = [await p.token(client)]
        clock.now = start + still_cached
        got.append(await p.token(client))
        clock.now = start + refreshed
        got.append(await p.token(client))
        return got

    assert run(server, scenario) == ["t1", "t1", "t2"]
    assert p.fetches == 2


def test_concurrent_callers_share_one_refresh() -> None:
    server = TokenServer()
    p = provider()

    async def scenario(client: httpx2.AsyncClient) -> list[str]:
        return list(await asyncio.gather(*(p.token(client) for _ in range(20))))

    assert run(server, scenario) == ["t1"] * 20
    assert len(server.requests) == 1


def test_invalidate_refreshes_once_then_tells_the_caller_to_stop() -> None:
    server = TokenServer()
    clock = Clock()
    p = provider(clock)

    async def scenario(client: httpx2.AsyncClient) -> list[Any]:
        t1 = await p.token(client)
        steps: list[Any] = [t1, p.invalidate(t1)]  # refused: forget it
        steps.append(p.invalidate(t1))  # a second request that was in flight with t1
        t2 = await p.token(client)
        steps += [t2, p.invalidate(t2)]  # the fresh token is refused too: stop
        return steps

    assert run(server, scenario) == ["t1", True, True, "t2", False]
    assert len(server.requests) == 2


def test_a_refused_token_long_after_a_refresh_is_a_new_first_failure() -> None:
    server = TokenServer()
    clock = Clock()
    p = provider(clock)

    async def scenario(client: httpx2.AsyncClient) -> list[Any]:
        t1 = await p.token(client)
        p.invalidate(t1)
        t2 = await p.token(client)
        clock.now += RELAPSE_WINDOW
        refused_later = p.invalidate(t2)
        t3 = await p.token(client)
        return [refused_later, t3]

    assert run(server, scenario) == [True, "t3"]


def test_a_refresh_on_expiry_does_not_count_as_a_refresh_after_failure() -> None:
    server = TokenServer(ttl=10)
    clock = Clock()
    p = provider(clock)

    async def scenario(client: httpx2.AsyncClient) -> list[Any]:
        t1 = await p.token(client)
        p.invalidate(t1)
        await p.token(client)  # t2, after a refusal
        clock.now += 9  # past t2's refresh time
        t3 = await p.token(client)  # refreshed on expiry
        return [t3, p.invalidate(t3)]

    assert run(server, scenario) == ["t3", True]


REFUSED = (
    "the target refused the API key/secret (19002 invalid_grant): check LOADER_API_KEY "
    "and LOADER_API_SECRET, and that this machine's clock is right (the token's iat must "
    "be within a few minutes)"
)
NO_TOKEN = (
    "the token endpoint https://uat.icasework.com/token?db=acme answered without an "
    "access_token: check the account name (db=acme) in --target"
)


def html(status: int, **headers: str) -> httpx2.Response:
    page = "<html><body>An Unexpected Error Occured</body></html>"
    return httpx2.Response(status, headers=headers, text=page)


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (
            html(
                400,
                **{
                    "X-Application-Error-Code": "19002",
                    "X-Application-Error-Info": "invalid_grant",
                },
            ),
            AuthError,
            REFUSED,
        ),
        (html(400, **{"X-Application-Error-Info": "invalid_grant"}), AuthError, REFUSED),
        (httpx2.Response(200), AuthError, NO_TOKEN),
        (httpx2.Response(200, text="<html></html>"), AuthError, NO_TOKEN),
        (httpx2.Response(200, json={"token_type": "Bearer"}), AuthError, NO_TOKEN),
        (httpx2.Response(200, json=["t1"]), AuthError, NO_TOKEN),
        (
            html(403, **{"X-Application-Error-Code": "19021", "X-Application-Error-Info": "IP"}),
            AuthError,
            "the token endpoint https://uat.icasework.com/token?db=acme answered HTTP 403 "
            "(19021 IP): check LOADER_API_KEY, LOADER_API_SECRET and the --target URL, and "
            "whether the key pair is limited to other IP addresses",
        ),
        (
            html(503),
            TargetError,
            "the token endpoint https://uat.icasework.com/token?db=acme answered HTTP 503: "
            "the target is unavailable, try again later",
        ),
    ],
)
def test_token_failures_say_what_to_check(
    response: httpx2.Response, error: type[Exception], message: str
) -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.content.decode())
        return response

    with pytest.raises(error) as info:
        run(handler, provider().token)
    assert type(info.value) is error
    assert str(info.value) == message
    assertion = parse_qs(seen[0])["assertion"][0]
    assert SECRET not in message and assertion not in message


def test_production_token_url_names_the_host_account() -> None:
    p = ICaseworkJWT("https://acme.icasework.com/token", CREDS, clock=Clock())
    with pytest.raises(AuthError) as info:
        run(lambda request: httpx2.Response(200), p.token)
    assert "check the account name (db=acme) in --target" in str(info.value)


def test_connection_error_is_a_target_error_naming_the_url() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(TargetError) as info:
        run(handler, provider().token)
    assert type(info.value) is TargetError
    assert str(info.value) == (
        "cannot get a token from https://uat.icasework.com/token?db=acme: ConnectError: "
        "[Errno 111] Connection refused; check the --target URL and the network"
    )
    assert isinstance(info.value.__cause__, httpx2.ConnectError)


def test_a_short_vendor_secret_signs_without_warnings() -> None:
    # iCasework's documented example secret is 25 characters long.
    p = ICaseworkJWT(TOKEN_URL, Credentials(KEY, "1e4ecd8c836bbd7bc9ae4b5e6"), clock=Clock())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assertion = p.assertion(1_568_216_086.0)
    assert jwt.decode_complete(assertion, options={"verify_signature": False})["payload"] == {
        "iss": KEY,
        "aud": TOKEN_URL,
        "iat": 1_568_216_086,
        "exp": 1_568_219_686,
    }


def test_icasework_jwt_is_a_token_provider() -> None:
    p: TokenProvider = provider()
    assert p.invalidate("never-issued") is True
