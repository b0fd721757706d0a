"""Fast readers of fixed-size headers: field offsets, a ``struct`` format, bit shifts and masks.

construct parses a header 40-150x slower than ``struct``, and importing it costs ~25 ms of a
run's start-up; so the per-packet path reads through a :class:`Layout`, and every Layout it
uses is *derived* from a schema in ``formats/`` (formats/derive.py) and kept, generated, in
formats/derived.py.  The schema stays the only place a layout is written (STYLE.md, dpkt);
this module needs nothing but ``struct``.
"""

from __future__ import annotations

import struct


class Field:
    """Where one named field lives: its byte offset, struct code and, for a
    bit field, the shift and mask that extract it from its containing word."""

    __slots__ = ("name", "offset", "size", "code", "index", "order", "shift", "mask")

    def __init__(self, name: str, offset: int, size: int, code: str, index: int, order: str = "=",
                 shift: int = 0, mask: int | None = None) -> None:  # fmt: skip
        self.name = name
        self.offset = offset
        self.size = size
        self.code = code
        self.index = index  # position in Layout.struct.unpack() result
        self.order = order
        self.shift = shift
        self.mask = mask

    def __repr__(self) -> str:
        where = f"{self.offset}, {self.size}, {self.code!r}, {self.index}, {self.order!r}, {self.shift}"
        return f"Field({self.name!r}, {where}, {self.mask})"


class Layout:
    """Offsets and a struct format of a fixed-size header (``format`` None: fields of mixed byte order)."""

    def __init__(self, size: int, format: str | None, fields: tuple[Field, ...]) -> None:
        self.size = size
        self.fields: dict[str, Field] = {f.name: f for f in fields}
        # One struct for the whole header only when all fields share a byte
        # order (sockaddr_ll mixes native and __be16: read it field by field).
        self.format = format
        self.byte_order = format[0] if format else None
        self.struct = struct.Struct(format) if format else None

    def __repr__(self) -> str:
        """The constructor call that rebuilds this layout (formats/derived.py is written with it)."""
        fields = "".join(f"\n    {f!r}," for f in self.fields.values())
        return f"Layout({self.size}, {self.format!r}, ({fields}\n))"

    def whole_struct(self) -> struct.Struct:
        """The struct reading the whole header (typed: no None to check)."""
        if self.struct is None:
            raise ValueError("a header with fields of mixed byte order has no single struct")
        return self.struct

    def big_endian_at(self, name: str, size: int) -> int:
        """Offset of a big-endian ``size``-byte field, for code that reads it
        byte by byte; raises if the schema says otherwise, so such code stays
        tied to the schema."""
        f = self.fields[name]
        if f.size != size or (size > 1 and f.order != ">"):
            raise TypeError(f"{name}: expected a big-endian {size}-byte field")
        return f.offset

    def little_endian_at(self, name: str, size: int) -> int:
        """:meth:`big_endian_at` for a little-endian field (a classic PCAP record header as
        our writer writes it)."""
        f = self.fields[name]
        if f.size != size or (size > 1 and f.order != "<"):
            raise TypeError(f"{name}: expected a little-endian {size}-byte field")
        return f.offset

    def in_byte(self, name: str) -> tuple[int, int, int]:
        """``(offset, shift, mask)`` of a field that lies within one byte:
        ``(buf[base + offset] >> shift) & mask`` is its value.  For compiled
        code, where one byte index costs far less than a struct call."""
        f = self.fields[name]
        if f.mask is None:
            if f.size != 1:
                raise ValueError(f"{name} is {f.size} bytes wide")
            return f.offset, 0, 0xFF
        low, high = f.shift // 8, (f.shift + f.mask.bit_length() - 1) // 8
        if low != high:
            raise ValueError(f"{name} spans more than one byte")
        return f.offset + f.size - 1 - low, f.shift % 8, f.mask

    def offset(self, name: str) -> int:
        return self.fields[name].offset

    def word(self, name: str) -> tuple[int, int, int]:
        """``(index, shift, mask)`` of a field in ``struct.unpack()``'s result:
        ``(words[index] >> shift) & mask`` is its value (mask -1: whole word)."""
        f = self.fields[name]
        return f.index, f.shift, (-1 if f.mask is None else f.mask)

    def reader(self, name: str):
        """``read(buf, base) -> value`` for one field, bit fields included."""
        field = self.fields[name]
        unpack = struct.Struct(field.order + field.code).unpack_from
        off = field.offset
        if field.mask is None:
            return lambda buf, base=0: unpack(buf, base + off)[0]
        shift, mask = field.shift, field.mask
        return lambda buf, base=0: (unpack(buf, base + off)[0] >> shift) & mask

    def parse_fast(self, buf, base: int = 0) -> dict:
        """All named fields as a dict, via the derived struct (used by tests
        to prove agreement with ``schema.parse``)."""
        if self.struct is None:
            return {name: self.reader(name)(buf, base) for name in self.fields}
        words = self.struct.unpack_from(buf, base)
        out = {}
        for f in self.fields.values():
            v = words[f.index]
            out[f.name] = v if f.mask is None else (v >> f.shift) & f.mask
        return out
