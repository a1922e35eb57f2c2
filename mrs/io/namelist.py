"""Fortran namelists as LCModel files hold them, and the text of (possibly gzipped) files.

    $NAME  KEY = value, KEY2 = 'text', ... $END        (also &NAME ... / and &END)

`blocks(text)` yields (NAME, {KEY: value}, start, end) in order; values are int, float, bool or str
(the first of a list). `numbers(text, n)` reads n floats written in any Fortran E/D/F format, also
when fixed-width fields touch ("-1.2E-03-4.5E-04"), and NaN/Infinity.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

_BLOCK = re.compile(r"[$&](\w+)(.*?)(?:[$&]END\b|^\s*/\s*$)", re.S | re.I | re.M)
_KEY = re.compile(r"([A-Za-z_]\w*(?:\(\s*\d+\s*\))?)\s*=")
# NaN and Infinity as Fortran writes them are numbers too: a damaged file is then refused where the sample is
# (mrs.io.prepare, mrs.basis), not for a count that is one short
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[EeDd][-+]?\d+)?"
                    r"|(?<![A-Za-z])[-+]?(?i:nan|inf(?:inity)?)(?![A-Za-z])")


def read_text(path: Path) -> str:
    """The file's text; a name ending in .gz is decompressed first."""
    if path.suffix.lower() == ".gz":
        with gzip.open(path, "rt", errors="replace") as fh:
            return fh.read()
    return path.read_text(errors="replace")


def stem(path: Path) -> Path:
    """The path without a trailing .gz (so 'x.BASIS.gz' has the suffix '.BASIS')."""
    return path.with_suffix("") if path.suffix.lower() == ".gz" else path


def _value(text: str) -> str | float | int | bool | None:
    v = text.strip().rstrip(",").strip()
    if not v:
        return None  # 'ECHOT = ,' (an empty value, as makebasis writes it)
    if v[0] in "'\"":
        q = v[0]
        end = v.find(q, 1)
        return v[1:end if end > 0 else None].strip()
    if v.upper() in ("T", ".TRUE.", ".TRUE", "TRUE"):
        return True
    if v.upper() in ("F", ".FALSE.", ".FALSE", "FALSE"):
        return False
    first = (v.split(",")[0].split() or [""])[0]
    try:
        return int(first)
    except ValueError:
        pass
    try:
        return float(first.replace("D", "E").replace("d", "e"))
    except ValueError:
        return v


def parse_namelist(body: str) -> dict:
    """Key = value pairs of one namelist body (keys upper-cased; a repeated key keeps its last value)."""
    # Quoted strings may contain '=': blank them out while locating keys.
    masked = re.sub(r"'[^']*'", lambda m: "'" + " " * (len(m.group()) - 2) + "'", body)
    keys = list(_KEY.finditer(masked))
    out = {}
    for k, nxt in zip(keys, keys[1:] + [None], strict=True):
        out[k.group(1).upper()] = _value(body[k.end(): nxt.start() if nxt else len(body)])
    return out


def blocks(text: str) -> Iterator[tuple[str, dict, int, int]]:
    for m in _BLOCK.finditer(text):
        yield m.group(1).upper(), parse_namelist(m.group(2)), m.start(), m.end()


def numbers(text: str, n: int | None = None) -> list[float]:
    """The first n numbers of `text` (all when n is None), Fortran D exponents included."""
    found = _FLOAT.findall(text) if n is None else [m.group() for _, m in zip(range(n), _FLOAT.finditer(text))]
    return [float(x.replace("D", "E").replace("d", "e")) for x in found]
