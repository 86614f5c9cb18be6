"""The client's TLS: the SSLContext of libpq's sslmode and its ssl* settings."""
from __future__ import annotations

import ipaddress
import os
import ssl

from .conninfo import ConnParams
from .connerrors import ConnectError


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


_TLS_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                 "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def make_ssl_context(p: ConnParams) -> ssl.SSLContext:
    """An SSLContext doing what libpq's sslmode asks (initialize_SSL of fe-secure-openssl.c):
    verify-ca/-full check the chain (and the name) against sslrootcert; the weaker modes
    encrypt only, unless a root certificate file exists, which makes them verify-ca."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for attr, val in (("minimum_version", p.ssl_min_protocol_version),
                      ("maximum_version", p.ssl_max_protocol_version)):
        if val:
            if val not in _TLS_VERSIONS:
                raise ConnectError(f"invalid {attr.replace('imum_version', '')}_protocol_version "
                                   f"value: \"{val}\"")
            setattr(ctx, attr, _TLS_VERSIONS[val])
    mode = p.sslmode
    root = p.sslrootcert or ""
    verify = mode in ("verify-ca", "verify-full")
    if root == "system":
        if mode != "verify-full":
            raise ConnectError(f"weak sslmode \"{mode}\" may not be used with sslrootcert=system "
                               "(use \"verify-full\")")
        ctx.load_default_certs()
    elif root and os.path.isfile(root):
        ctx.load_verify_locations(cafile=root)
        verify = True
        if p.sslcrl and os.path.isfile(p.sslcrl):
            ctx.load_verify_locations(cafile=p.sslcrl)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    elif verify:
        raise ConnectError(f"root certificate file \"{root}\" does not exist; either provide "
                           "the file, use the system's trusted roots with sslrootcert=system, "
                           "or change sslmode to disable server certificate verification")
    ctx.check_hostname = mode == "verify-full"
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if p.sslcert and os.path.isfile(p.sslcert):
        if not (p.sslkey and os.path.isfile(p.sslkey)):
            raise ConnectError(f"certificate present, but not private key file \"{p.sslkey}\"")
        try:
            ctx.load_cert_chain(p.sslcert, p.sslkey, password=p.sslpassword)
        except (ssl.SSLError, OSError) as exc:
            raise ConnectError(f"could not load client certificate \"{p.sslcert}\": "
                               f"{getattr(exc, 'reason', None) or exc}") from None
    return ctx


__all__ = ["make_ssl_context", "is_ip_address"]
