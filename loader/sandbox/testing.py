"""Helpers for tests against a sandbox: a signed assertion, a token answer, an authorised client.

The loader itself signs assertions in `loader.auth`; these are deliberately independent,
so that the sandbox tests do not depend on the code they help to test.
"""

from __future__ import annotations

import time
import warnings

import httpx2
import jwt

from loader.sandbox import Sandbox

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def assertion(sb: Sandbox, *, secret: str | None = None, **claims: object) -> str:
    payload: dict[str, object] = {
        "iss": sb.config.api_key,
        "aud": f"{sb.base}/token?db={sb.config.account}",
        "iat": int(time.time()),
    }
    payload.update(claims)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(payload, secret or sb.config.api_secret, algorithm="HS256")


def token_answer(sb: Sandbox, signed: str, db: str | None = None) -> httpx2.Response:
    return httpx2.post(
        f"{sb.base}/token?db={db or sb.config.account}",
        data={"grant_type": JWT_BEARER, "assertion": signed},
    )


def client(sb: Sandbox) -> httpx2.Client:
    """A client that sends a fresh access token; requests go to `/{endpoint}?db=...`."""
    access = token_answer(sb, assertion(sb)).json()["access_token"]
    return httpx2.Client(
        base_url=sb.base,
        headers={"Authorization": f"Bearer {access}"},
        params={"db": sb.config.account},
        timeout=10.0,
    )
