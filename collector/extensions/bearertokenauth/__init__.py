"""The ``bearertokenauth`` extension (server side): requests must carry ``Authorization: Bearer <token>``.

Used by a receiver through ``auth: {authenticator: bearertokenauth}``. Options and defaults: README.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collector.component import Authenticator, ExtensionFactory, Host
from processors.pipeline import CreateSettings

__all__ = ["AuthenticationError", "BearerTokenAuth", "BearerTokenAuthConfig", "factories"]

TYPE = "bearertokenauth"
DEFAULT_SCHEME = "Bearer"
DEFAULT_HEADER = "Authorization"


class AuthenticationError(Exception):
    """The request's credentials are missing or wrong (401 / UNAUTHENTICATED)."""


@dataclass
class BearerTokenAuthConfig:
    scheme: str = DEFAULT_SCHEME
    header: str = DEFAULT_HEADER
    token: str = ""
    tokens: list[str] = field(default_factory=list)
    filename: str = ""  # read at start; one token per line

    def validate(self) -> list[str]:
        given = [k for k in ("token", "tokens", "filename") if getattr(self, k)]
        if not given:
            return ["one of token, tokens or filename is required"]
        if len(given) > 1:
            return [f"only one of token, tokens or filename may be set (got {', '.join(given)})"]
        return []


class BearerTokenAuth(Authenticator):
    def __init__(self, settings: CreateSettings, config: BearerTokenAuthConfig) -> None:
        self.settings = settings
        self.config = config
        self._expected: list[bytes] = []

    async def start(self, host: Host) -> None:
        tokens = list(self.config.tokens) or ([self.config.token] if self.config.token else [])
        if self.config.filename:
            try:
                text = Path(self.config.filename).read_text(encoding="utf-8")
            except OSError as exc:
                raise OSError(f"cannot read token file {self.config.filename!r}: {exc.strerror}") from exc
            tokens = [line.strip() for line in text.splitlines() if line.strip()]
            if not tokens:
                raise ValueError(f"token file {self.config.filename!r} is empty")
        self._expected = [t.encode() for t in tokens]

    def authenticate(self, headers: Mapping[str, str]) -> None:
        """Raise AuthenticationError unless the header carries a configured token (constant-time compare)."""
        value = headers.get(self.config.header.lower())
        if value is None:
            raise AuthenticationError(f"missing {self.config.header} header")
        credentials = str(value)
        if self.config.scheme:
            # Auth schemes are case-insensitive (RFC 9110 section 11.1): "bearer abc" is "Bearer abc".
            scheme, _, credentials = credentials.strip().partition(" ")
            if scheme.lower() != self.config.scheme.lower():
                raise AuthenticationError(f"expected the {self.config.scheme} scheme")
            credentials = credentials.strip()
        given = credentials.encode()
        # compare_digest against every token, without stopping early, so timing reveals nothing.
        matched = False
        for expected in self._expected:
            matched |= hmac.compare_digest(given, expected)
        if not matched:
            raise AuthenticationError("invalid bearer token")


factories = (ExtensionFactory(type=TYPE, config_type=BearerTokenAuthConfig, create=BearerTokenAuth),)
