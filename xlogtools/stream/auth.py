"""Client authentication, sans-I/O: trust, password (cleartext), md5 and SCRAM-SHA-256
(with channel binding, SCRAM-SHA-256-PLUS, over TLS) as libpq's fe-auth.c does it.

`Authenticator.respond(request)` takes an Authentication* event of the protocol and returns
the client event to send (or None). The password is asked for only when the server wants
one (that is when libpq reads ~/.pgpass too), and it never appears in a message or repr.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

from ..errors import XlogError
from .connerrors import ConnectError
from .messages import (AuthenticationCleartextPassword, AuthenticationMD5Password,
                       AuthenticationOk, AuthenticationRequest, AuthenticationSASL,
                       AuthenticationSASLContinue, AuthenticationSASLFinal,
                       AuthenticationUnsupported, ClientEvent, PasswordMessage,
                       SASLInitialResponse, SASLResponse)

SCRAM = "SCRAM-SHA-256"
SCRAM_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING_MODES = ("disable", "prefer", "require")
# The server takes the user from the startup packet and ignores SCRAM's (libpq sends an
# empty one, which scramp refuses); any saslprep-clean name does.
_SCRAM_USER = "*"


class AuthError(XlogError):
    """Authentication could not be done on our side (no password, unsupported method,
    a server that failed to prove it knows the password...)."""


PasswordSource = Callable[[], "str | None"]


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """pg_md5_encrypt twice: 'md5' + md5(md5(password + user) + salt), as hex."""
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode()


class Authenticator:
    """Answers one server's authentication requests for one connection attempt.

    password: a callable returning the password or None; called at most once, and only
    when the server asks for a password. tls: the connection's ssl.SSLObject (for SCRAM
    channel binding) or None. channel_binding: libpq's disable | prefer | require.
    """

    def __init__(self, user: str, password: PasswordSource, *, tls: Any = None,
                 channel_binding: str = "prefer") -> None:
        if channel_binding not in CHANNEL_BINDING_MODES:
            raise AuthError(f"invalid channel_binding value: \"{channel_binding}\"")
        self.user = user
        self._password_source = password
        self._password: str | None = None
        self._asked = False
        self.tls = tls
        self.channel_binding = channel_binding
        self._scram: Any = None
        self._sasl_done = False
        self.method: str = "trust"  # what the server made us use, for messages
        self.used_channel_binding = False

    def _get_password(self) -> str:
        if not self._asked:
            self._asked = True
            self._password = self._password_source()
        if not self._password:
            raise AuthError(f"password authentication failed for user \"{self.user}\": "
                            "fe_sendauth: no password supplied")
        return self._password

    @property
    def password_was_used(self) -> bool:
        return self._asked and bool(self._password)

    def respond(self, req: AuthenticationRequest) -> ClientEvent | None:
        if isinstance(req, AuthenticationOk):
            self._check_ok()
            return None
        if self.channel_binding == "require" and not isinstance(
                req, (AuthenticationSASL, AuthenticationSASLContinue, AuthenticationSASLFinal)):
            raise AuthError("channel binding required, but server authenticated client without "
                            "channel binding")
        if isinstance(req, AuthenticationCleartextPassword):
            self.method = "password"
            return PasswordMessage(self._get_password().encode())
        if isinstance(req, AuthenticationMD5Password):
            self.method = "md5"
            return PasswordMessage(md5_password(self.user, self._get_password(), req.salt))
        if isinstance(req, AuthenticationSASL):
            return self._sasl_start(req.mechanisms)
        if isinstance(req, AuthenticationSASLContinue):
            return self._sasl_continue(req.data)
        if isinstance(req, AuthenticationSASLFinal):
            self._sasl_final(req.data)
            return None
        if isinstance(req, AuthenticationUnsupported):
            raise AuthError(f"authentication method {req.method} requested by the server is "
                            "not supported")
        raise AuthError(f"unexpected authentication request {type(req).__name__}")

    # -- SCRAM ----------------------------------------------------------------------------
    def _sasl_start(self, mechanisms: tuple[str, ...]) -> ClientEvent:
        import scramp

        self.method = "scram-sha-256"
        use_plus = (SCRAM_PLUS in mechanisms and self.tls is not None
                    and self.channel_binding != "disable")
        if self.channel_binding == "require" and not use_plus:
            raise AuthError("channel binding is required, but server did not offer an "
                            "authentication method that supports channel binding"
                            if self.tls is not None else
                            "channel binding is required, but SSL not in use")
        if SCRAM not in mechanisms and not use_plus:
            raise AuthError("none of the server's SASL authentication mechanisms are supported: "
                            + ", ".join(mechanisms))
        password = self._get_password()
        try:
            if use_plus:
                self._scram = scramp.ScramClient([SCRAM_PLUS], _SCRAM_USER, password,
                                                 channel_binding=("tls-server-end-point",
                                                                  self.tls))
                self.used_channel_binding = True
            else:
                # gs2 flag 'n' (libpq says 'y' over TLS when the server offers no -PLUS; the
                # server accepts both, 'y' only adds downgrade detection).
                self._scram = scramp.ScramClient([SCRAM], _SCRAM_USER, password)
            first = self._scram.get_client_first()
        except scramp.ScramException as exc:
            raise AuthError(f"SCRAM authentication failed: {exc}") from None
        return SASLInitialResponse(self._scram.mechanism_name, first.encode())

    def _sasl_continue(self, data: bytes) -> ClientEvent:
        import scramp

        if self._scram is None:
            raise AuthError("server sent SASL continue without starting SASL authentication")
        try:
            self._scram.set_server_first(data.decode("utf-8"))
            return SASLResponse(self._scram.get_client_final().encode())
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise AuthError(f"SCRAM authentication failed: {exc}") from None

    def _sasl_final(self, data: bytes) -> None:
        import scramp

        if self._scram is None:
            raise AuthError("server sent SASL final without starting SASL authentication")
        try:
            self._scram.set_server_final(data.decode("utf-8"))
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise AuthError("SCRAM authentication failed: the server could not prove that it "
                            f"knows the password ({exc})") from None
        self._sasl_done = True

    def _check_ok(self) -> None:
        if self._scram is not None and not self._sasl_done:
            raise AuthError("server sent AuthenticationOk before the SCRAM exchange was complete")
        if self.channel_binding == "require" and not self.used_channel_binding:
            raise AuthError("channel binding required, but server authenticated client without "
                            "channel binding")


def method_name(ev: Any) -> str:
    if isinstance(ev, AuthenticationOk):
        return "none"
    if isinstance(ev, AuthenticationCleartextPassword):
        return "password"
    if isinstance(ev, AuthenticationMD5Password):
        return "md5"
    if isinstance(ev, AuthenticationSASL):
        return "scram-sha-256"
    if isinstance(ev, AuthenticationUnsupported):
        return {7: "gss", 8: "gss", 9: "sspi"}.get(ev.code, "other")
    return "other"


def check_require_auth(spec: str | None, methods: list[str], where: str) -> None:
    """libpq 16's require_auth: a list of allowed methods, or of forbidden ones ('!md5')."""
    if not spec or not methods:
        return
    items = [s.strip() for s in spec.split(",") if s.strip()]
    used = methods[0]
    negated = [s[1:] for s in items if s.startswith("!")]
    allowed = [s for s in items if not s.startswith("!")]
    if negated and allowed:
        raise ConnectError(f"{where}: negative require_auth method \"!\" cannot be mixed with "
                           "non-negative methods")
    ok = used not in negated if negated else used in allowed
    if not ok:
        what = {"none": "server did not complete authentication",
                "password": "server requested a cleartext password",
                "md5": "server requested a hashed password",
                "scram-sha-256": "server requested SASL authentication"}.get(used, used)
        raise ConnectError(f"{where}: authentication method requirement \"{spec}\" failed: "
                           f"{what}", auth_failed=True)
