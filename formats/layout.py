"""Fast readers derived from the construct schemas.

construct parses a header 40-150x slower than ``struct``; the per-packet path
therefore reads through a :class:`Layout` computed *from* a schema once at
import: the byte offset of every field, a ``struct`` format for the whole
header, shift/mask pairs for bit fields, and where a field lies in one byte.  The schema stays the only place
a layout is written (STYLE.md, dpkt).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import construct as cs

_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class Field:
    """Where one named field lives: its byte offset, struct code and, for a
    bit field, the shift and mask that extract it from its containing word."""

    name: str
    offset: int
    size: int
    code: str
    index: int  # position in Layout.struct.unpack() result
    order: str = "="
    shift: int = 0
    mask: int | None = None


class Layout:
    """Offsets and a struct format computed from a fixed-size construct Struct."""

    def __init__(self, schema: cs.Construct) -> None:
        self.schema = schema
        self.fields: dict[str, Field] = {}
        self._orders: set[str] = set()
        codes: list[str] = []  # one per value struct.unpack() returns
        parts: list[str] = []  # the struct format: the codes and pad bytes ("6x"), in order
        offset = 0
        for sub in _struct_of(schema).subcons:
            name = getattr(sub, "name", None)
            inner = _unwrap(sub)
            if isinstance(inner, cs.FormatField):
                order = inner.fmtstr[0] if inner.fmtstr[0] in "<>=" else "="
                self._orders.add(order)
                code = inner.fmtstr[1:]
                size = inner.length
                if name:
                    self.fields[name] = Field(name, offset, size, code, len(codes), order)
                codes.append(code)
                parts.append(code)
            elif _is_bitstruct(inner):
                size = inner.sizeof()
                code = _INT_CODES[size]
                word_index = len(codes)
                codes.append(code)
                parts.append(code)
                if name:  # the whole word too, e.g. flags_fragment for "MF or offset"
                    self.fields[name] = Field(name, offset, size, code, word_index, ">")
                self._add_bits(inner, offset, size, code, word_index)
            elif isinstance(inner, cs.Bytes) and isinstance(inner.length, int):
                size = inner.length
                code = f"{size}s"
                if name:
                    self.fields[name] = Field(name, offset, size, code, len(codes))
                codes.append(code)
                parts.append(code)
            elif isinstance(sub, cs.Padded) or isinstance(inner, cs.Padded):
                size = sub.sizeof()
                parts.append(f"{size}x")  # no value: later fields keep their unpack() index
                offset += size
                continue
            else:
                raise TypeError(f"cannot derive a fast reader for field {name!r} ({inner!r})")
            offset += size
        self.size = offset
        assert offset == schema.sizeof(), (name, offset, schema.sizeof())
        # One struct for the whole header only when all fields share a byte
        # order (sockaddr_ll mixes native and __be16: read it field by field).
        orders = self._orders or {"="}
        self.byte_order = orders.pop() if len(orders) == 1 else None
        self.format = (self.byte_order + "".join(parts)) if self.byte_order else None
        self.struct = struct.Struct(self.format) if self.format else None

    def _add_bits(self, bits: cs.Construct, offset: int, size: int, code: str, index: int) -> None:
        # Bitwise fields are big-endian bit strings: the first declared field
        # holds the most significant bits of the containing word.
        self._orders.add(">") if size > 1 else None
        remaining = size * 8
        for sub in _struct_of(bits.subcon).subcons:
            width = _unwrap(sub).length
            remaining -= width
            if sub.name:
                self.fields[sub.name] = Field(
                    sub.name, offset, size, code, index, ">", remaining, (1 << width) - 1
                )

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


def _unwrap(sub: cs.Construct) -> cs.Construct:
    while isinstance(sub, cs.Renamed):
        sub = sub.subcon
    return sub


def _struct_of(schema: cs.Construct) -> cs.Struct:
    schema = _unwrap(schema)
    if isinstance(schema, cs.Transformed):
        schema = schema.subcon
    if not isinstance(schema, cs.Struct):
        raise TypeError(f"not a Struct: {schema!r}")
    return schema


def _is_bitstruct(c: cs.Construct) -> bool:
    return isinstance(c, cs.Transformed) and isinstance(c.subcon, cs.Struct)
