"""Connection parameters as libpq reads them (libpq "Connection Strings", "Environment
Variables", "The Password File"; fe-connect.c): key=value strings and postgresql:// URIs,
PG* environment variables, defaults, and ~/.pgpass. No I/O but reading the password file.

Passwords are kept out of every message and repr: errors name keys and positions, never
values.
"""
from __future__ import annotations

import logging
import os
import pwd
import stat
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

from ..errors import XlogError

log = logging.getLogger("xlogtools.stream")

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_PORT = 5432
_URI_PREFIXES = ("postgresql://", "postgres://")

# keyword -> environment variable (None: no variable), as PQconninfoOptions lists them.
KEYWORDS: dict[str, str | None] = {
    "service": "PGSERVICE", "user": "PGUSER", "password": "PGPASSWORD",
    "passfile": "PGPASSFILE", "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT", "dbname": "PGDATABASE", "host": "PGHOST",
    "hostaddr": "PGHOSTADDR", "port": "PGPORT", "client_encoding": "PGCLIENTENCODING",
    "options": "PGOPTIONS", "application_name": "PGAPPNAME",
    "fallback_application_name": None, "keepalives": None, "keepalives_idle": None,
    "keepalives_interval": None, "keepalives_count": None, "tcp_user_timeout": None,
    "sslmode": "PGSSLMODE", "sslnegotiation": "PGSSLNEGOTIATION",
    "sslcompression": "PGSSLCOMPRESSION", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcertmode": "PGSSLCERTMODE", "sslpassword": None, "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER", "require_auth": "PGREQUIREAUTH",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION", "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME", "gsslib": "PGGSSLIB", "gssdelegation": "PGGSSDELEGATION",
    "replication": None, "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS", "min_protocol_version": None,
    "max_protocol_version": None,
}
_SECRET_KEYS = frozenset({"password", "sslpassword"})


class ConnInfoError(XlogError):
    """A connection string or parameter libpq would reject."""


# ---------------------------------------------------------------------------------------------
# parsing


def is_conninfo(text: str) -> bool:
    """libpq's recognized_connection_string(): a URI, or something with '='."""
    return text.startswith(_URI_PREFIXES) or "=" in text


def parse_conninfo(text: str) -> dict[str, str]:
    """Keywords of a connection string in either form (no environment, no defaults)."""
    if text.startswith(_URI_PREFIXES):
        return _parse_uri(text)
    return _parse_keyvalue(text)


def _check_key(key: str, where: str = "connection option") -> None:
    if key not in KEYWORDS:
        raise ConnInfoError(f"invalid {where} \"{key}\"")


def _parse_keyvalue(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i, n = 0, len(text)
    prev = ""
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        start = i
        while i < n and not text[i].isspace() and text[i] != "=":
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            # libpq names the token; after a password it may be the password's second half
            shown = "..." if prev in _SECRET_KEYS else key
            raise ConnInfoError(f"missing \"=\" after \"{shown}\" in connection info string")
        prev = key
        i += 1
        while i < n and text[i].isspace():
            i += 1
        chars: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ConnInfoError("unterminated quoted string in connection info string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                elif c == "'":
                    i += 1
                    break
                else:
                    chars.append(c)
                    i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                else:
                    chars.append(text[i])
                    i += 1
        _check_key(key)
        out[key] = "".join(chars)


def _parse_uri(uri: str) -> dict[str, str]:
    """conninfo_uri_parse_options(): postgresql://[user[:password]@][hosts][/dbname][?k=v&...]."""
    prefix = next(p for p in _URI_PREFIXES if uri.startswith(p))
    rest = uri[len(prefix):]
    out: dict[str, str] = {}
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    path = None
    if "/" in rest:
        rest, path = rest.split("/", 1)
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        if ":" in userinfo:
            user, password = userinfo.split(":", 1)
            if password:
                out["password"] = _pct(password, "password")
        else:
            user = userinfo
        if user:
            out["user"] = _pct(user, "user")
    hosts, ports = [], []
    for spec in rest.split(",") if rest else []:
        if spec.startswith("["):
            end = spec.find("]")
            if end < 0:
                raise ConnInfoError(f"end of string reached when looking for matching \"]\" in "
                                    f"IPv6 host address in URI: \"{_redact_uri(uri)}\"")
            host, tail = spec[1:end], spec[end + 1:]
            if tail and not tail.startswith(":"):
                raise ConnInfoError(f"unexpected character \"{tail[0]}\" at position "
                                    f"{uri.find(spec) + end + 2} in URI (expected \":\" or "
                                    f"\"/\"): \"{_redact_uri(uri)}\"")
            port = tail[1:] if tail else ""
        else:
            host, _, port = spec.partition(":")
        hosts.append(_pct(host, "host"))
        ports.append(_pct(port, "port"))
    if any(hosts):
        out["host"] = ",".join(hosts)
    if any(ports):
        out["port"] = ",".join(ports)
    if path:
        out["dbname"] = _pct(path, "dbname")
    for item in query.split("&") if query else []:
        if "=" not in item:
            raise ConnInfoError(f"missing key/value separator \"=\" in URI query parameter: "
                                f"\"{item.split('=')[0]}\"")
        k, v = item.split("=", 1)
        k, v = _pct(k, "parameter"), _pct(v, k)
        if k == "ssl" and v == "true":  # JDBC compatibility, as libpq
            k, v = "sslmode", "require"
        _check_key(k, "URI query parameter:")
        out[k] = v
    return out


def _pct(s: str, what: str) -> str:
    if "%" in s:
        for i, c in enumerate(s):
            if c == "%" and (len(s) < i + 3 or not all(
                    x in "0123456789abcdefABCDEF" for x in s[i + 1:i + 3])):
                raise ConnInfoError(f"invalid percent-encoded token in the {what} of a URI")
        out = unquote(s, errors="strict")
        if "\0" in out:
            raise ConnInfoError(f"forbidden value %00 in percent-encoded {what}")
        return out
    return s


def _redact_uri(uri: str) -> str:
    """The URI with a password replaced, for messages."""
    prefix = next((p for p in _URI_PREFIXES if uri.startswith(p)), "")
    rest = uri[len(prefix):]
    head = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in head:
        userinfo = head.rsplit("@", 1)[0]
        if ":" in userinfo:
            rest = rest.replace(userinfo, userinfo.split(":", 1)[0] + ":********", 1)
    return prefix + rest


def redact(text: str) -> str:
    """A connection string with its passwords hidden (for logs)."""
    if text.startswith(_URI_PREFIXES):
        return _redact_uri(text)
    try:
        kv = _parse_keyvalue(text)
    except ConnInfoError:
        return "<connection string>"
    return " ".join(f"{k}={'********' if k in _SECRET_KEYS else v}" for k, v in kv.items())


# ---------------------------------------------------------------------------------------------
# resolved parameters


@dataclass(frozen=True)
class Host:
    """One entry of host/hostaddr/port: a TCP address or a Unix socket directory."""

    host: str  # name, IP, or socket directory ('' never: defaults are filled in)
    hostaddr: str | None
    port: int

    @property
    def is_unix(self) -> bool:
        return self.host.startswith(("/", "@")) and not self.hostaddr

    @property
    def socket_path(self) -> str:
        p = f"{self.host}/.s.PGSQL.{self.port}"
        return "\0" + p[1:] if p.startswith("@") else p

    def __str__(self) -> str:
        if self.is_unix:
            return f"socket \"{self.socket_path}\""
        addr = f" ({self.hostaddr})" if self.hostaddr and self.hostaddr != self.host else ""
        return f"server at \"{self.host}\"{addr}, port {self.port}"


@dataclass(frozen=True)
class ConnParams:
    """Everything needed to open one connection; built by `resolve()`."""

    hosts: tuple[Host, ...]
    user: str
    dbname: str
    password: str | None = field(default=None, repr=False)
    passfile: str | None = None
    connect_timeout: float | None = None
    application_name: str | None = None
    options: str | None = None
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslpassword: str | None = field(default=None, repr=False)
    sslcrl: str | None = None
    sslsni: bool = True
    ssl_min_protocol_version: str | None = "TLSv1.2"
    ssl_max_protocol_version: str | None = None
    channel_binding: str = "prefer"
    require_auth: str | None = None
    client_encoding: str | None = None
    target_session_attrs: str = "any"
    keepalives: bool = True
    extra: dict[str, str] = field(default_factory=dict, repr=False)

    def startup_parameters(self, replication: str | None = "true") -> tuple[tuple[str, str], ...]:
        out = [("user", self.user), ("database", self.dbname)]
        if replication is not None:
            out.append(("replication", replication))
        if self.application_name:
            out.append(("application_name", self.application_name))
        if self.options:
            out.append(("options", self.options))
        out.append(("client_encoding", self.client_encoding or "UTF8"))
        return tuple(out)

    def password_for(self, host: Host) -> str | None:
        """The password to use with `host`: the password parameter, else ~/.pgpass."""
        if self.password:
            return self.password
        name = host.host if host.host else host.hostaddr or ""
        return pgpass_lookup(self.passfile, name, host.port, self.dbname, self.user)

    def describe(self) -> str:
        """user@hosts, safe for messages."""
        return f"user \"{self.user}\" at " + ", ".join(str(h) for h in self.hosts)

    def with_(self, **kw: object) -> "ConnParams":
        return replace(self, **kw)  # type: ignore[arg-type]


def default_socket_dir() -> str:
    """libpq's DEFAULT_PGSOCKET_DIR: Debian builds use /var/run/postgresql, upstream /tmp."""
    return "/var/run/postgresql" if os.path.isdir("/var/run/postgresql") else "/tmp"


def _home(env: "dict[str, str] | os._Environ[str] | None" = None) -> str:
    """pqGetHomeDirectory(): $HOME, else the password database's home directory."""
    home = (os.environ if env is None else env).get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return ""


def _os_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        raise ConnInfoError("could not look up local user ID %d" % os.geteuid()) from None


def resolve(conninfo: str | None = None, overrides: dict[str, str | None] | None = None, *,
            environ: dict[str, str] | None = None, force: dict[str, str] | None = None,
            fallback_application_name: str | None = None) -> ConnParams:
    """Connection parameters as libpq computes them: the connection string (or a plain
    database name), then `overrides` (command-line -h/-p/-U), then PG* variables from
    `environ`, then defaults; `force` wins over everything (pg_receivewal's dbname)."""
    env = os.environ if environ is None else environ
    given: dict[str, str] = {}
    if conninfo:
        if is_conninfo(conninfo):
            given.update(parse_conninfo(conninfo))
        else:
            given["dbname"] = conninfo
    for k, v in (overrides or {}).items():
        if v is not None:
            _check_key(k)
            given[k] = v
    if "service" in given or (env.get("PGSERVICE") and "service" not in given):
        raise ConnInfoError("connection service files (service=, PGSERVICE) are not supported; "
                            "give the parameters directly")
    vals: dict[str, str] = {}
    for key, var in KEYWORDS.items():
        if key in given:
            vals[key] = given[key]
        elif var and env.get(var):
            vals[key] = env[var]
    if "sslmode" not in vals and env.get("PGREQUIRESSL") == "1":
        vals["sslmode"] = "require"
    vals.update(force or {})
    return _build(vals, env, fallback_application_name)


def _build(v: dict[str, str], env: dict[str, str] | os._Environ[str],
           fallback_app: str | None) -> ConnParams:
    hosts = _hosts(v.get("host", ""), v.get("hostaddr", ""), v.get("port", ""))
    user = v.get("user") or _os_user()
    sslmode = v.get("sslmode", "prefer")
    if sslmode not in SSLMODES:
        raise ConnInfoError(f"invalid sslmode value: \"{sslmode}\"")
    cb = v.get("channel_binding", "prefer")
    if cb not in ("disable", "prefer", "require"):
        raise ConnInfoError(f"invalid channel_binding value: \"{cb}\"")
    gss = v.get("gssencmode", "prefer")
    if gss == "require":
        raise ConnInfoError("gssencmode value \"require\" invalid when GSSAPI support is not "
                            "compiled in")
    if v.get("sslnegotiation", "postgres") != "postgres":
        raise ConnInfoError("sslnegotiation=direct is not supported (use postgres)")
    tsa = v.get("target_session_attrs", "any")
    if tsa not in ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"):
        raise ConnInfoError(f"invalid target_session_attrs value: \"{tsa}\"")
    timeout = None
    if v.get("connect_timeout"):
        try:
            t = int(v["connect_timeout"])
        except ValueError:
            raise ConnInfoError("invalid integer value \"%s\" for connection option "
                                "\"connect_timeout\"" % v["connect_timeout"]) from None
        timeout = float(max(t, 2)) if t > 0 else None  # libpq: at least 2 seconds
    home = _home(env)
    pg_dir = os.path.join(home, ".postgresql")
    sslrootcert = v.get("sslrootcert") or os.path.join(pg_dir, "root.crt")
    sslcert = v.get("sslcert") or os.path.join(pg_dir, "postgresql.crt")
    sslkey = v.get("sslkey") or os.path.join(pg_dir, "postgresql.key")
    sslcrl = v.get("sslcrl") or os.path.join(pg_dir, "root.crl")
    return ConnParams(
        hosts=hosts, user=user, dbname=v.get("dbname") or user,
        password=v.get("password") or None,
        passfile=v.get("passfile") or os.path.join(home, ".pgpass"),
        connect_timeout=timeout,
        application_name=v.get("application_name") or v.get("fallback_application_name")
        or fallback_app,
        options=v.get("options") or None, sslmode=sslmode, sslrootcert=sslrootcert,
        sslcert=sslcert, sslkey=sslkey, sslpassword=v.get("sslpassword"), sslcrl=sslcrl,
        sslsni=v.get("sslsni", "1") != "0",
        ssl_min_protocol_version=v.get("ssl_min_protocol_version") or "TLSv1.2",
        ssl_max_protocol_version=v.get("ssl_max_protocol_version") or None,
        channel_binding=cb, require_auth=v.get("require_auth") or None,
        client_encoding=v.get("client_encoding") or None, target_session_attrs=tsa,
        keepalives=v.get("keepalives", "1") != "0",
        extra={k: x for k, x in v.items() if k in ("keepalives_idle", "keepalives_interval",
                                                    "keepalives_count", "tcp_user_timeout")})


def _hosts(host: str, hostaddr: str, port: str) -> tuple[Host, ...]:
    hs = host.split(",") if host else []
    addrs = hostaddr.split(",") if hostaddr else []
    n = max(len(hs), len(addrs), 1)
    if hs and len(hs) != n or addrs and len(addrs) != n:
        raise ConnInfoError(f"could not match {len(hs)} host names to {len(addrs)} hostaddr "
                            "values")
    ports = port.split(",") if port else []
    if len(ports) > 1 and len(ports) != n:
        raise ConnInfoError(f"could not match {len(ports)} port numbers to {n} hosts")
    out = []
    for i in range(n):
        h = hs[i].strip() if hs else ""
        a = addrs[i].strip() if addrs else ""
        p = (ports[i] if len(ports) > 1 else ports[0] if ports else "").strip()
        try:
            pn = int(p) if p else DEFAULT_PORT
        except ValueError:
            raise ConnInfoError(f"invalid integer value \"{p}\" for connection option "
                                "\"port\"") from None
        if not 1 <= pn <= 65535:
            raise ConnInfoError(f"invalid port number: \"{p}\"")
        if not h and not a:
            h = default_socket_dir()
        out.append(Host(h, a or None, pn))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# the password file


def pgpass_lookup(passfile: str | None, host: str, port: int, dbname: str, user: str
                  ) -> str | None:
    """passwordFromFile(): the first matching hostname:port:database:username:password."""
    if not passfile:
        return None
    try:
        st = os.stat(passfile)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        log.warning("password file \"%s\" is not a plain file", passfile)
        return None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("password file \"%s\" has group or world access; permissions should be "
                    "u=rw (0600) or less", passfile)
        return None
    # 'localhost' matches no host or the default socket directory
    if not host or host == default_socket_dir():
        host = "localhost"
    want = (host, str(port), dbname, user)
    try:
        with open(passfile, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if not line or line.lstrip().startswith("#"):
            continue
        fields = _pgpass_fields(line)
        if len(fields) < 5:
            continue
        if all(f == "*" or f == w for f, w in zip(fields[:4], want)):
            return fields[4] or None
    return None


def _pgpass_fields(line: str) -> list[str]:
    """Split on unescaped ':' (the fifth field is the rest of the line), undoing '\\'."""
    fields: list[str] = []
    cur: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            cur.append(line[i + 1])
            i += 2
            continue
        if c == ":" and len(fields) < 4:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return fields
