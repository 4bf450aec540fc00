"""Access to the pages: the API's token, given as a bearer token or as the password of HTTP Basic auth (browsers
ask for it once and resend it), and the guard on the pages' changes (acknowledge, resolve).

A change must be a JSON POST from the same origin: browsers send no cross-origin JSON without a CORS preflight,
which this server never grants, so another site cannot make a signed-in browser change anything.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

__all__ = ["REALM", "authorised", "challenge", "refuse_change"]

REALM = "otel-metrics"


def _given(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def authorised(request: Request, token: str | None) -> bool:
    if not token:
        return True
    given = _given(request.headers.get("authorization", ""))
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def challenge() -> Response:
    return PlainTextResponse(
        "The analytics token is required: any user name, the token as password.",
        401,
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )


def refuse_change(request: Request, token: str | None) -> Response | None:
    """Why a change request is refused (a response: unauthorised, not JSON, cross-origin), or None when it may
    proceed."""
    if not authorised(request, token):
        return challenge()
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        return JSONResponse({"error": "changes take a JSON body (Content-Type: application/json)"}, 415)
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        return JSONResponse({"error": f"cross-origin change refused (Origin {origin!r})"}, 403)
    return None
