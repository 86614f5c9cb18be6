"""Type output of numbers: float4out/float8out (the shortest text that reads back, as
PostgreSQL's Ryu-based float output with extra_float_digits 1), numeric_out, cash_out
(utils/adt/float.c, numeric.c, cash.c). Part of replay/types.py's output functions; the same
rules (BadDatum for bytes no value has)."""
from __future__ import annotations

import math
import struct

from .typebase import BadDatum, f32 as _f32, f64 as _f64, i16 as _i16, i64 as _i64, need, \
    u16 as _u16, u32 as _u32, u64 as _u64


def _shortest(value: float, digits_repr: str, fixed_max_exp: int) -> str:
    """float4out/float8out with extra_float_digits > 0: the shortest round-trip digits
    (Ryu, common/d2s.c / f2s.c), fixed-point for decimal exponents in [-4, fixed_max_exp),
    exponential ('1e+15', '1.5e-05') otherwise."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign = "-" if digits_repr.startswith("-") else ""
    r = digits_repr.lstrip("-")
    if "e" in r:
        mant, e = r.split("e")
        exp10 = int(e)
    else:
        mant, exp10 = r, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    digits = (ip + fp).lstrip("0")
    # position of the decimal point relative to the start of `ip+fp`
    point = len(ip) + exp10
    lead_zeros = len(ip + fp) - len((ip + fp).lstrip("0"))
    point -= lead_zeros
    digits = digits.rstrip("0") or "0"
    exp = point - 1  # decimal exponent of the first significant digit
    if -4 <= exp < fixed_max_exp:
        if point <= 0:
            return sign + "0." + "0" * (-point) + digits
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return sign + digits[:point] + "." + digits[point:]
    m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    es = "-" if exp < 0 else "+"
    return f"{sign}{m}e{es}{abs(exp):02d}"


def _ryu_digits(frac: int, exp_bits: int, mant_bits: int, bias: int, max_digits: int
                ) -> tuple[int, int]:
    """(digits, exponent) of the shortest decimal d * 10**e strictly inside the rounding
    interval of the binary float frac/exp_bits, the nearest such to its exact value (ties to
    even), as PostgreSQL's Ryu (common/f2s.c, d2s.c) picks it.

    Exact integer arithmetic: the value is mant * 2**e2; the interval runs to the midpoints to
    its neighbours, which PostgreSQL never includes (it builds Ryu without
    STRICTLY_SHORTEST: acceptBounds is false). At a power of two the lower neighbour is half
    as far away."""
    if exp_bits:
        mant, e2 = frac | (1 << mant_bits), exp_bits - bias - mant_bits
    else:
        mant, e2 = frac, 1 - bias - mant_bits
    # value, lower and upper bound, all times 2**(e2 - 2)
    mv = 4 * mant
    lo = mv - (1 if frac == 0 and exp_bits > 1 else 2)
    hi = mv + 2
    shift = e2 - 2
    num_scale, den = (1 << shift, 1) if shift >= 0 else (1, 1 << -shift)

    def cmp(a: int, d: int, e: int) -> int:
        """sign of d * 10**e - a * 2**shift."""
        left = d * (10 ** e if e >= 0 else 1) * den
        right = a * num_scale * (10 ** -e if e < 0 else 1)
        return (left > right) - (left < right)

    # k: the decimal exponent of the value's first digit
    top = mv * num_scale
    k = len(str(top // den)) - 1 if top >= den else -len(str(den // top))
    while cmp(mv, 1, k) > 0:
        k -= 1
    while cmp(mv, 1, k + 1) <= 0:
        k += 1
    for p in range(1, max_digits + 1):
        e = k - p + 1
        scaled = top * (10 ** -e if e < 0 else 1)
        bottom = den * (10 ** e if e >= 0 else 1)
        q, r = divmod(scaled, bottom)  # floor(value / 10**e)
        best: tuple[int, int] | None = None
        for d in ((q,) if r == 0 else (q, q + 1)):
            if cmp(lo, d, e) > 0 and cmp(hi, d, e) < 0:
                dist = abs(d * bottom - scaled)
                if best is None or dist < best[0] or (dist == best[0] and d % 2 == 0):
                    best = (dist, d)
        if best is not None:
            d = best[1]
            while d and d % 10 == 0:
                d //= 10
                e += 1
            return d, e
    raise AssertionError("the value itself is always inside")  # pragma: no cover


def float8out(b: bytes) -> str:
    need(b, 8, "float8")
    v = _f64(b, 0)[0]
    if v != v or v in (float("inf"), float("-inf")) or v == 0:
        return _shortest(v, repr(v), 15)
    r = repr(v)
    bits = _u64(b, 0)[0]
    frac, exp_bits = bits & ((1 << 52) - 1), (bits >> 52) & 0x7FF
    if not _on_boundary(r, frac, exp_bits, 52, 1023):
        return _shortest(v, r, 15)
    d, e = _ryu_digits(frac, exp_bits, 52, 1023, 17)
    return _shortest(v, ("-" if bits >> 63 else "") + f"{d}e{e}", 15)


def _on_boundary(r: str, frac: int, exp_bits: int, mant_bits: int, bias: int) -> bool:
    """Whether Python's repr (the shortest digits that read back, midpoints included when
    the mantissa is even) chose a decimal exactly halfway to a neighbour, which PostgreSQL's
    Ryu does not accept; then _ryu_digits decides. Rare: the repr is right otherwise."""
    mant = frac | (1 << mant_bits) if exp_bits else frac
    if mant % 2:
        return False  # odd mantissa: repr excludes the midpoints too
    e2 = (exp_bits - bias - mant_bits) if exp_bits else (1 - bias - mant_bits)
    m, _, ex = r.lstrip("-").partition("e")
    if e2 < 1 and m.rstrip("0").rstrip(".")[-1:] != "5":
        return False  # a midpoint with a binary fraction ends in the decimal digit 5
    ip, _, fp = m.partition(".")
    d, e = int(ip + fp), int(ex or 0) - len(fp)
    # d * 10**e == (4*mant +- 2 or 4*mant - 1) * 2**(e2 - 2)?
    shift = e2 - 2
    left = d * 10 ** e if e >= 0 else d
    right_scale = 10 ** -e if e < 0 else 1
    lo = 4 * mant - (1 if frac == 0 and exp_bits > 1 else 2)
    for a in (lo, 4 * mant + 2):
        right = a * right_scale
        if (left << -shift if shift < 0 else left) == (right << shift if shift > 0 else right):
            return True
    return False


def float4out(b: bytes) -> str:
    need(b, 4, "float4")
    v = _f32(b, 0)[0]
    if v != v or v in (float("inf"), float("-inf")) or v == 0:
        return _shortest(v, repr(v), 6)
    bits = _u32(b, 0)[0]
    frac, exp_bits = bits & 0x7FFFFF, (bits >> 23) & 0xFF
    fast = _f4_fast(v, frac, exp_bits)
    if fast is not None:
        return _shortest(v, fast, 6)
    d, e = _ryu_digits(frac, exp_bits, 23, 127, 9)
    return _shortest(v, ("-" if bits >> 31 else "") + f"{d}e{e}", 6)


def _f4_fast(v: float, frac: int, exp_bits: int) -> str | None:
    """The float4 digits by Python's correctly rounded formatting, where that is certain to
    be Ryu's answer; None leaves it to _ryu_digits. For p = 1, 2, ... digits the nearest
    p-digit decimal is Ryu's pick when it lies strictly between the midpoints to the
    neighbours (doubles, exact: a float4 midpoint has 25 bits). Not certain, so left out:
    a power of two (its lower neighbour is nearer, a farther candidate above may fit) and a
    candidate that reads as a double next to a midpoint (it may be on either side)."""
    if frac == 0:
        return None
    half = math.ldexp(1.0, (exp_bits or 1) - 127 - 24)
    lo, hi = v - half, v + half
    if lo > hi:
        lo, hi = hi, lo
    for p in range(1, 10):
        s = f"{v:.{p - 1}e}"
        x = float(s)
        if lo < x < hi:
            if x == math.nextafter(lo, hi) or x == math.nextafter(hi, lo):
                return None
            return s
        if x == lo or x == hi:
            return None
    return None


NUMERIC_SIGN_MASK = 0xC000
NUMERIC_NEG = 0x4000
NUMERIC_SHORT = 0x8000
NUMERIC_SPECIAL = 0xC000


def numeric_parts(b: bytes) -> tuple[str, int, int, list[int]] | str:
    """(sign '+'|'-', weight, dscale, base-10000 digits) of a numeric's body, or the special
    value's text (NaN, Infinity, -Infinity)."""
    need(b, 2, "numeric")
    header = _u16(b, 0)[0]
    flag = header & NUMERIC_SIGN_MASK
    if flag == NUMERIC_SPECIAL:
        # numeric_out compares the whole header: anything but +-Infinity prints as NaN
        return {0xD000: "Infinity", 0xF000: "-Infinity"}.get(header, "NaN")
    if flag == NUMERIC_SHORT:
        sign = "-" if header & 0x2000 else "+"
        dscale = (header & 0x1F80) >> 7
        weight = header & 0x003F
        if header & 0x0040:
            weight |= ~0x003F
        pos = 2
    else:
        need(b, 4, "numeric")
        sign = "-" if flag == NUMERIC_NEG else "+"
        dscale = header & 0x3FFF
        weight = _i16(b, 2)[0]
        pos = 4
    n = (len(b) - pos) // 2
    digits = list(struct.unpack_from(f"<{n}h", b, pos)) if n else []
    if any(not 0 <= d < 10000 for d in digits):
        raise BadDatum("numeric digit outside 0..9999")
    return sign, weight, dscale, digits


def numeric_out(b: bytes) -> str:
    """numeric_out / get_str_from_var."""
    parts = numeric_parts(b)
    if isinstance(parts, str):
        return parts
    sign, weight, dscale, digits = parts
    out = ["-"] if sign == "-" and digits else []
    if weight < 0:
        out.append("0")
        d = weight + 1
    else:
        ip = []
        for d in range(weight + 1):
            dig = digits[d] if d < len(digits) else 0
            ip.append(f"{dig:04d}")
        out.append("".join(ip).lstrip("0") or "0")
        d = weight + 1
    if dscale > 0:
        frac = []
        i = 0
        while i < dscale:
            dig = digits[d] if 0 <= d < len(digits) else 0
            frac.append(f"{dig:04d}")
            d += 1
            i += 4
        out.append("." + "".join(frac)[:dscale])
    return "".join(out)


def cash_out(b: bytes) -> str:
    """cash_out in the C/POSIX lc_monetary: '$1,234.56', '-$1,234.56'."""
    need(b, 8, "money")
    v = _i64(b, 0)[0]
    neg = v < 0
    v = abs(v)
    whole, cents = divmod(v, 100)
    s = f"{whole:,}.{cents:02d}"
    return ("-$" if neg else "$") + s
