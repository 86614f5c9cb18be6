"""SCRAM-SHA-256, server side (RFC 5802/7677 as auth-scram.c speaks it): the verifiers of the
users file (`ScramVerifier`) and one exchange (`ScramExchange`). The client side is `auth.py`.

scramp's ScramServer rejects the empty user name libpq sends in client-first ("n,,n=,r=")
(PostgreSQL takes the user from the startup packet), and the name is part of the signed
AuthMessage, so it cannot be rewritten: the exchange is done here; verifiers come from
scramp (see users.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Callable

from ..errors import XlogError
from .backend import INVALID_PASSWORD, PROTOCOL_VIOLATION


@dataclass(frozen=True)
class ScramVerifier:
    """SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (pg_authid.rolpassword)."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> "ScramVerifier":
        m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):"
                         r"([A-Za-z0-9+/=]+)", text.strip())
        if not m:
            raise ValueError("not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$iter:salt$stored:server)")
        it = int(m.group(1))
        salt, sk, svk = (base64.b64decode(m.group(i), validate=True) for i in (2, 3, 4))
        if it < 1 or len(sk) != 32 or len(svk) != 32 or not salt:
            raise ValueError("malformed SCRAM-SHA-256 verifier")
        return cls(it, salt, sk, svk)

    def text(self) -> str:
        b: Callable[[bytes], str] = lambda x: base64.b64encode(x).decode()  # noqa: E731
        return (f"SCRAM-SHA-256${self.iterations}:{b(self.salt)}${b(self.stored_key)}:"
                f"{b(self.server_key)}")

    @classmethod
    def mock(cls, user: str, secret: bytes) -> "ScramVerifier":
        """A stable fake for unknown users (scram_mock_salt), so they cannot be probed."""
        h = hashlib.sha256(secret + user.encode()).digest()
        return cls(4096, h[:16], secrets.token_bytes(32), secrets.token_bytes(32))


class ScramError(XlogError):
    def __init__(self, sqlstate: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.detail = detail


class ScramExchange:
    """Server half of one SCRAM-SHA-256 exchange: `first(data)` -> server-first,
    `final(data)` -> server-final (raises ScramError on a bad proof or malformed messages)."""

    MECHANISM = "SCRAM-SHA-256"

    def __init__(self, user: str, verifier: ScramVerifier, *, known: bool = True) -> None:
        self.user = user
        self.verifier = verifier
        self.known = known
        self._client_first_bare = ""
        self._server_first = ""
        self._gs2 = ""
        self._nonce = ""

    def first(self, mechanism: str, data: bytes) -> bytes:
        if mechanism != self.MECHANISM:
            raise ScramError(PROTOCOL_VIOLATION, "client selected an invalid SASL "
                             "authentication mechanism")
        try:
            msg = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message") from None
        if msg.startswith("p="):
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message",
                             "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message "
                             "does not include channel binding data.")
        if not (msg.startswith("n,") or msg.startswith("y,")):
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message",
                             "Unexpected channel-binding flag.")
        parts = msg.split(",", 2)
        if len(parts) != 3 or (parts[1] and not parts[1].startswith("a=")):
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message")
        self._gs2 = parts[0] + "," + parts[1] + ","
        bare = parts[2]
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r=") \
                or len(attrs[1]) < 3 or any(c in attrs[1][2:] for c in ",\0"):
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message",
                             "Expected attribute \"r\" for the client nonce.")
        self._client_first_bare = bare
        self._nonce = attrs[1][2:] + base64.b64encode(secrets.token_bytes(18)).decode()
        self._server_first = (f"r={self._nonce},s={base64.b64encode(self.verifier.salt).decode()}"
                              f",i={self.verifier.iterations}")
        return self._server_first.encode()

    def final(self, data: bytes) -> bytes:
        try:
            msg = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message") from None
        cut = msg.rfind(",p=")
        if cut < 0:
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message",
                             "Could not find proof in client-final-message.")
        without_proof, proof_b64 = msg[:cut], msg[cut + 3:]
        attrs = dict(a.split("=", 1) for a in without_proof.split(",") if "=" in a)
        try:
            cbind = base64.b64decode(attrs.get("c", ""), validate=True).decode()
            proof = base64.b64decode(proof_b64, validate=True)
        except (ValueError, UnicodeDecodeError):
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message") from None
        if cbind != self._gs2:
            raise ScramError(PROTOCOL_VIOLATION, "SCRAM channel binding check failed")
        if attrs.get("r") != self._nonce:
            raise ScramError(PROTOCOL_VIOLATION, "malformed SCRAM message",
                             "Nonce does not match.")
        auth_message = ",".join((self._client_first_bare, self._server_first,
                                 without_proof)).encode()
        v = self.verifier
        client_sig = hmac.new(v.stored_key, auth_message, hashlib.sha256).digest()
        ok = len(proof) == 32
        if ok:
            client_key = bytes(a ^ b for a, b in zip(proof, client_sig))
            ok = hmac.compare_digest(hashlib.sha256(client_key).digest(), v.stored_key)
        if not ok or not self.known:
            raise ScramError(INVALID_PASSWORD, f"password authentication failed for user "
                             f"\"{self.user}\"")
        server_sig = hmac.new(v.server_key, auth_message, hashlib.sha256).digest()
        return b"v=" + base64.b64encode(server_sig)


__all__ = ["ScramVerifier", "ScramError", "ScramExchange"]
