"""The users file of `xlogtools serve --auth FILE`: one `name:SCRAM-SHA-256$...` per line.

The verifier is what PostgreSQL stores in pg_authid.rolpassword, so a line can be made from
`SELECT rolname || ':' || rolpassword FROM pg_authid` of a server using SCRAM, or with
`make_verifier(password)` / `add_user(path, name, password)` here (scramp computes it).
Blank lines and lines starting with '#' are ignored.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from ..errors import InputError
from .scram import ScramVerifier

DEFAULT_ITERATIONS = 4096  # scram_iterations' default


def make_verifier(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier text of a password (random salt)."""
    from scramp import ScramMechanism

    salt, stored, server, it = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        password, iteration_count=iterations)
    return ScramVerifier(it, salt, stored, server).text()


def parse_users(text: str, path: str = "") -> dict[str, ScramVerifier]:
    users: dict[str, ScramVerifier] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        name, sep, verifier = s.partition(":")
        if not sep or not name:
            raise InputError(f"users file \"{path}\" line {lineno}: expected name:SCRAM-SHA-256$...",
                             file=path)
        try:
            users[name] = ScramVerifier.parse(verifier)
        except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
            raise InputError(f"users file \"{path}\" line {lineno} (user \"{name}\"): {exc}",
                             file=path) from None
    return users


def load_users(path: str | os.PathLike[str]) -> dict[str, ScramVerifier]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"could not read users file \"{p}\": {exc.strerror or exc}",
                         file=str(p)) from None
    return parse_users(text, str(p))


def add_user(path: str | os.PathLike[str], name: str, password: str) -> None:
    """Add or replace `name` in the users file (created 0600 when missing)."""
    if not name or ":" in name or "\n" in name:
        raise InputError(f"invalid user name {name!r}")
    p = Path(path)
    lines = p.read_text(encoding="utf-8").splitlines() if p.exists() else []
    lines = [ln for ln in lines if ln.partition(":")[0].strip() != name]
    lines.append(f"{name}:{make_verifier(password)}")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
