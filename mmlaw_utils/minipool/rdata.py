"""Minimal reader for R lazy-load databases (``.rdx``/``.rdb``): enough to read character vectors.

R packages store their datasets as a gzip'd index (``Rdata.rdx``) of (offset, length) pairs into
``Rdata.rdb``, whose chunks are a 4-byte big-endian length and a zlib stream of an object in R's
XDR serialisation format. Vectors, strings, lists, pairlists, symbols and attributes are
supported; environments and closures are not (datasets do not need them).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

_NIL, _REF, _GLOBALENV, _EMPTYENV, _BASEENV, _MISSINGARG = 254, 255, 253, 242, 241, 251
_SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 1, 2, 9, 10, 13, 14, 16, 19
_ALTREP = 238


class _Reader:
    """Cursor over one XDR-serialised R object."""

    def __init__(self, data: bytes):
        if data[:2] != b"X\n":
            raise ValueError(f"not an XDR R serialisation (starts {data[:2]!r})")
        self.data, self.pos, self.refs = data, 2, []
        version = self.int()
        self.pos += 8  # writer and minimal reader versions
        if version == 3:
            n_encoding = self.int()  # read first: ``self.pos += self.int()`` would lose the int's advance
            self.pos += n_encoding  # native encoding name

    def int(self) -> int:
        value = struct.unpack_from(">i", self.data, self.pos)[0]
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:
            upper, lower = self.int(), self.int()
            n = (upper << 32) + lower
        return n

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (_NIL, _GLOBALENV, _EMPTYENV, _BASEENV, _MISSINGARG):
            return None
        if kind == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _CHAR:
            n = self.int()
            if n == -1:
                return None
            text = self.data[self.pos:self.pos + n].decode("utf-8", errors="replace")
            self.pos += n
            return text
        if kind == _LIST:  # pairlist: attributes, tag, value, then the rest of the list
            out = {}
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else str(len(out))
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
                if kind != _LIST:
                    if kind != _NIL:
                        raise ValueError(f"pairlist ends in type {kind} at byte {self.pos}")
                    return out
        if kind == _ALTREP:
            info, state, _ = self.item(), self.item(), self.item()
            raise ValueError(f"ALTREP object {info} is not supported (state {type(state).__name__})")
        value = self._vector(kind)
        if has_attr:
            attributes = self.item()
            names = attributes.get("names") if isinstance(attributes, dict) else None
            if names is not None and isinstance(value, list):
                return dict(zip(names, value, strict=True))
        return value

    def _vector(self, kind: int):
        n = self.length()
        if kind in (_LGL, _INT):
            values = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
            return values
        if kind == _REAL:
            values = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
            return values
        if kind in (_STR, _VEC):
            return [self.item() for _ in range(n)]
        raise ValueError(f"R object type {kind} is not supported (byte {self.pos})")


def unserialize(data: bytes):
    """Python value of an XDR-serialised R object: lists, dicts (named), strings, numbers, None (NA/NULL)."""
    return _Reader(data).item()


def read_lazyload(rdx: bytes, rdb: bytes) -> dict:
    """Every variable of an R lazy-load database, by name (``rdx``: the gzip'd index; ``rdb``: the data)."""
    index = unserialize(gzip.decompress(rdx) if rdx[:2] == b"\x1f\x8b" else zlib.decompress(rdx[4:]))
    out = {}
    for name, (offset, length) in index["variables"].items():
        chunk = rdb[offset:offset + length]
        out[name] = unserialize(zlib.decompress(chunk[4:]))
    return out


def read_lazyload_files(stem: str | Path) -> dict:
    """``read_lazyload`` of ``<stem>.rdx`` and ``<stem>.rdb``."""
    stem = Path(stem)
    return read_lazyload(stem.with_suffix(".rdx").read_bytes(), stem.with_suffix(".rdb").read_bytes())
