"""Credentials and token providers.

A `TokenProvider` hands out a bearer token, caches it, refreshes it before it expires,
and refreshes it once after the target refuses it, never in a loop. iCasework's is
`ICaseworkJWT` (fact sheet A2.1): sign an HS256 JWT with the API secret, exchange it
at the token endpoint for a one-hour bearer token.

Secrets (the API secret, the signed assertion, tokens) never appear in a repr, a log
line or an exception message.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt

from loader.errors import AuthError, LoaderError, TargetError

KEY_VARIABLE = "LOADER_API_KEY"
SECRET_VARIABLE = "LOADER_API_SECRET"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # seconds; the `exp` claim, as one public client sets it
DEFAULT_TTL = 3600.0  # the documented token lifetime, used when expires_in is missing
# The refresh margin never exceeds this fraction of a token's lifetime, so that a short
# lifetime (the sandbox's 5-second test tokens) still gives a usable cache.
MARGIN_FRACTION = 0.2
# A token fetched because the previous one was refused, and itself refused within this
# many seconds, means the target refuses our credentials: stop instead of refreshing again.
RELAPSE_WINDOW = 60.0


def _mask(value: str) -> str:
    # Enough of a key to tell two key pairs apart in a message, never the whole key.
    return value[:4] + "…" if len(value) >= 12 else "…"


@dataclass(frozen=True)
class Credentials:
    """An API key pair. `repr`/`str` show four characters of the key and none of the secret."""

    api_key: str
    api_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(api_key={_mask(self.api_key)!r}, api_secret='***')"

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        """Read LOADER_API_KEY and LOADER_API_SECRET; a missing one is an AuthError."""
        missing = [name for name in (KEY_VARIABLE, SECRET_VARIABLE) if not environ.get(name)]
        if missing:
            names = " and ".join(missing)
            verb = "is" if len(missing) == 1 else "are"
            raise AuthError(
                f"{names} {verb} not set: set {KEY_VARIABLE} and {SECRET_VARIABLE} "
                "to the API key pair from the target's administration screens"
            )
        return cls(environ[KEY_VARIABLE], environ[SECRET_VARIABLE])


def read_credentials_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (blank lines and `#` comments allowed), for `--credentials FILE`:
    a file only its owner reads keeps the secret out of shell history and `ps`.
    Errors name the file and the line number, never a value."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoaderError(f"cannot read the credentials file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LoaderError(f"the credentials file {path} is not UTF-8 text") from exc
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise LoaderError(f"{path} line {number}: expected NAME=value")
        values[name.strip()] = value.strip().strip("'\"")
    return values


class TokenProvider(Protocol):
    async def token(self, client: httpx2.AsyncClient) -> str:
        """A bearer token: cached, refreshed before expiry; one refresh for all callers."""
        ...

    def invalidate(self, token: str) -> bool:
        """The target refused `token`: forget it so that `token()` fetches a new one.

        False when `token` was itself fetched because its predecessor was refused and is
        refused again right away: the caller must stop (refresh once, never in a loop).
        """
        ...


def _account_hint(token_url: str) -> str:
    parts = urlsplit(token_url)
    db = parse_qs(parts.query).get("db")
    if db:
        return db[0]
    return (parts.hostname or "").split(".", 1)[0]


class ICaseworkJWT:
    """iCasework's JWT-bearer grant; implements `TokenProvider`."""

    def __init__(
        self,
        token_url: str,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300.0,
    ) -> None:
        self.token_url = token_url
        self._credentials = credentials
        self._clock = clock
        self._margin = refresh_margin
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._fetched_at = 0.0
        # True when the cached token replaced one the target refused.
        self._after_refusal = False
        self._refused_since_fetch = False
        self.fetches = 0  # token requests made (for tests and the run summary)

    def __repr__(self) -> str:
        return f"ICaseworkJWT({self.token_url!r}, {self._credentials!r})"

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def token(self, client: httpx2.AsyncClient) -> str:
        if self._valid() and self._token is not None:
            return self._token
        # Single flight: the first caller fetches, the others wait on the lock and then
        # find the fresh token in the cache.
        async with self._lock:
            if not self._valid() or self._token is None:
                await self._fetch(client)
            assert self._token is not None  # _fetch sets it or raises
            return self._token

    def invalidate(self, token: str) -> bool:
        if token != self._token:
            # An older token (a request that was in flight across a refresh): the current
            # one is not known to be bad, so nothing to forget and no reason to stop.
            return True
        if self._after_refusal and self._clock() - self._fetched_at < RELAPSE_WINDOW:
            return False
        self._token = None
        self._refused_since_fetch = True
        return True

    def assertion(self, now: float) -> str:
        """The signed JWT for a token request at `now` (Unix seconds)."""
        issued = int(now)
        claims = {
            "iss": self._credentials.api_key,
            "aud": self.token_url,  # exactly the token URL, ?db= included on UAT
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        with warnings.catch_warnings():
            # The vendor issues the secret; its length is not the user's to choose.
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.encode(claims, self._credentials.api_secret, algorithm="HS256")

    async def _fetch(self, client: httpx2.AsyncClient) -> None:
        now = self._clock()
        form = {"grant_type": JWT_BEARER, "assertion": self.assertion(now)}
        self.fetches += 1
        try:
            response = await client.post(self.token_url, data=form)
        except httpx2.HTTPError as exc:
            # The exception's text names the failure (refused, timed out); the request
            # body (the assertion) is not part of it.
            raise TargetError(
                f"cannot get a token from {self.token_url}: {type(exc).__name__}: {exc}; "
                "check the --target URL and the network"
            ) from exc
        access, ttl = self._read(response)
        margin = min(self._margin, MARGIN_FRACTION * ttl)
        self._after_refusal = self._refused_since_fetch
        self._refused_since_fetch = False
        self._token = access
        self._fetched_at = now
        self._refresh_at = now + ttl - margin

    def _read(self, response: httpx2.Response) -> tuple[str, float]:
        code = response.headers.get("X-Application-Error-Code")
        info = response.headers.get("X-Application-Error-Info")
        if code == "19002" or info == "invalid_grant":
            raise AuthError(
                "the target refused the API key/secret (19002 invalid_grant): check "
                f"{KEY_VARIABLE} and {SECRET_VARIABLE}, and that this machine's clock is "
                "right (the token's iat must be within a few minutes)"
            )
        status = response.status_code
        detail = " ".join(x for x in (code, info) if x)
        detail = f" ({detail})" if detail else ""
        if status >= 500:
            raise TargetError(
                f"the token endpoint {self.token_url} answered HTTP {status}{detail}: "
                "the target is unavailable, try again later"
            )
        if status != 200:
            raise AuthError(
                f"the token endpoint {self.token_url} answered HTTP {status}{detail}: check "
                f"{KEY_VARIABLE}, {SECRET_VARIABLE} and the --target URL, and whether the key "
                "pair is limited to other IP addresses"
            )
        access, ttl = _token_from(response)
        if access is None:
            raise AuthError(
                f"the token endpoint {self.token_url} answered without an access_token: "
                f"check the account name (db={_account_hint(self.token_url)}) in --target"
            )
        return access, ttl


def _token_from(response: httpx2.Response) -> tuple[str | None, float]:
    try:
        body = response.json()
    except ValueError:  # empty or not JSON: the wrong-account answer
        return None, DEFAULT_TTL
    if not isinstance(body, dict):
        return None, DEFAULT_TTL
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        return None, DEFAULT_TTL
    try:
        ttl = float(body.get("expires_in", DEFAULT_TTL))
    except (TypeError, ValueError):
        ttl = DEFAULT_TTL
    return access, ttl if ttl > 0 else DEFAULT_TTL
