"""formats/: the construct schemas and the fast readers derived from them (STYLE.md, dpkt).

The oracle for every derived reader is ``schema.parse`` itself: on random bytes the
Layout must read exactly what construct reads, for every fixed-size schema.
"""

from __future__ import annotations

import importlib
import pkgutil

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapconstrictor.formats as formats_pkg
from conftest import GOLDEN
from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.formats import quic
from pcapconstrictor.formats.derive import derive
from pcapconstrictor.formats.layout import Layout


def fixed_size_structs() -> dict[str, cs.Struct]:
    """Every module-level ``Struct`` in formats/ whose size does not depend on its
    contents.  Found by walking the package, so a schema added later is covered too."""
    found = {}
    for info in pkgutil.iter_modules(formats_pkg.__path__):
        module = importlib.import_module(f"{formats_pkg.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if not isinstance(obj, cs.Struct):
                continue
            try:
                obj.sizeof()
            except cs.SizeofError:
                continue  # variable size (quic_long_header, quic_short_header)
            found[f"{info.name}.{name}"] = obj
    return found


SCHEMAS = fixed_size_structs()

NAMED_IN_THE_BRIEF = {
    "pcap.pcap_file_header_le", "pcap.pcap_file_header_be", "pcap.pcaprec_hdr_le", "pcap.pcaprec_hdr_be",
    "ethernet.ethernet_header", "ethernet.vlan_tag", "ip.ipv4_header", "ip.ipv6_header",
    "transport.tcp_header", "transport.udp_header", "tls.tls_record_header", "quic.quic_long_header_fixed",
    "linux_packet.tpacket_req3", "linux_packet.tpacket_block_desc", "linux_packet.tpacket3_hdr",
    "linux_packet.tpacket_stats_v3", "linux_packet.tpacket_stats", "linux_packet.tpacket_auxdata",
    "linux_packet.sockaddr_ll", "linux_packet.packet_mreq",
}  # fmt: skip


def expected_fields(parsed: cs.Container, raw: bytes, layout: Layout) -> dict[str, object]:
    """Flatten construct's parse result the way the Layout names fields: leaves by
    their own name; a bit-field word also by its own name, as a big-endian integer."""
    out: dict[str, object] = {}

    def walk(container: cs.Container) -> None:
        for key, value in container.items():
            if key.startswith("_"):
                continue
            if isinstance(value, cs.Container):
                f = layout.fields[key]
                out[key] = int.from_bytes(raw[f.offset : f.offset + f.size], "big")
                walk(value)
            else:
                out[key] = value

    walk(parsed)
    return out


def test_every_schema_named_in_the_brief_is_found_by_the_walk():
    assert NAMED_IN_THE_BRIEF <= set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_layout_size_is_the_schema_size(name):
    schema = SCHEMAS[name]
    assert derive(schema).size == schema.sizeof()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_derived_readers_agree_with_schema_parse_on_random_bytes(name, data):
    schema = SCHEMAS[name]
    layout = derive(schema)
    size = schema.sizeof()
    raw = data.draw(st.binary(min_size=size, max_size=size), label="raw")
    base = data.draw(st.integers(min_value=0, max_value=7), label="base")
    buf = data.draw(st.binary(min_size=base, max_size=base)) + raw + b"\x5a\xa5"
    expected = expected_fields(schema.parse(raw), raw, layout)
    assert set(layout.fields) == set(expected)  # no field dropped, none invented
    assert layout.parse_fast(buf, base) == expected
    for field in layout.fields:
        assert layout.reader(field)(buf, base) == expected[field], field
    for field in _one_byte_fields(layout):  # what compiled code reads as one byte
        offset, shift, mask = layout.in_byte(field)
        assert (buf[base + offset] >> shift) & mask == expected[field], field


def _one_byte_fields(layout: Layout) -> list[str]:
    out = []
    for name in layout.fields:
        try:
            layout.in_byte(name)
        except ValueError:
            continue
        out.append(name)
    return out


def test_in_byte_covers_nibbles_and_bytes_and_refuses_wider_fields():
    layout = derive(SCHEMAS["ip.ipv4_header"])
    assert layout.in_byte("version") == (0, 4, 0xF)
    assert layout.in_byte("ihl") == (0, 0, 0xF)
    assert layout.in_byte("protocol") == (9, 0, 0xFF)
    assert layout.in_byte("more_fragments") == (6, 5, 1)  # flags_fragment word at 6, high byte
    for wide in ("total_length", "fragment_offset", "src"):
        with pytest.raises(ValueError):
            layout.in_byte(wide)


def test_big_endian_at_gives_offsets_only_for_what_the_schema_declares():
    layout = derive(SCHEMAS["ip.ipv4_header"])
    assert layout.big_endian_at("total_length", 2) == 2
    assert layout.big_endian_at("protocol", 1) == 9
    with pytest.raises(TypeError):
        layout.big_endian_at("total_length", 4)  # a u16, not a u32
    pcap = derive(SCHEMAS["pcap.pcaprec_hdr_le"])
    with pytest.raises(TypeError):
        pcap.big_endian_at("incl_len", 4)  # little-endian


def test_bit_fields_are_read_from_the_most_significant_bits_first():
    # ipv4: version is the high nibble, ihl the low one (RFC 791).
    layout = derive(SCHEMAS["ip.ipv4_header"])
    raw = bytes([0x46]) + bytes(19)
    assert layout.reader("version")(raw) == 4
    assert layout.reader("ihl")(raw) == 6


def test_pcap_headers_of_both_byte_orders_read_the_same_values():
    values = dict(magic_number=0xA1B2C3D4, version_major=2, version_minor=4, thiszone=-3600,
                  sigfigs=0, snaplen=262144, network=1)  # fmt: skip
    for name in ("pcap.pcap_file_header_le", "pcap.pcap_file_header_be"):
        raw = SCHEMAS[name].build(values)
        assert derive(SCHEMAS[name]).parse_fast(raw) == values
    le, be = (SCHEMAS[n].build(values) for n in ("pcap.pcap_file_header_le", "pcap.pcap_file_header_be"))
    assert le[:4] == b"\xd4\xc3\xb2\xa1" and be[:4] == b"\xa1\xb2\xc3\xd4"


def test_a_variable_size_schema_has_no_derived_layout():
    with pytest.raises(TypeError):
        derive(quic.quic_long_header)


# --- QUIC variable-length integers (RFC 9000 §16, appendix A.1) -------------------------------

# RFC 9000 §16, table 4: 2MSB -> length and usable range.
VARINT_RANGES = [(1, 0, 63), (2, 64, 16383), (4, 16384, 1073741823), (8, 1073741824, 4611686018427387903)]


@pytest.mark.parametrize(("encoded", "value"), [
    ("c2197c5eff14e88c", 151288809941952652),  # RFC 9000 A.1: eight-byte sequence
    ("9d7f3e7d", 494878333),  # four-byte
    ("7bbd", 15293),  # two-byte
    ("25", 37),  # single byte
    ("4025", 37),  # the same value in two bytes (not minimal, still valid)
])  # fmt: skip
def test_varint_decodes_the_rfc_9000_appendix_a1_examples(encoded, value):
    raw = bytes.fromhex(encoded)
    assert quic.quic_varint.parse(raw) == value
    assert quic.varint_at(raw, 0, len(raw)) == (value, len(raw))


@pytest.mark.parametrize(("size", "low", "high"), VARINT_RANGES)
def test_varint_is_built_in_the_shortest_encoding_and_round_trips(size, low, high):
    for value in (low, high):
        raw = quic.quic_varint.build(value)
        assert len(raw) == size
        assert raw[0] >> 6 == {1: 0, 2: 1, 4: 2, 8: 3}[size]
        assert quic.quic_varint.parse(raw) == value
        assert quic.varint_at(b"\xff" + raw + b"\xff", 1, len(raw) + 2) == (value, size)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 62) - 1))
def test_varint_round_trips_any_value_below_2_to_the_62(value):
    raw = quic.quic_varint.build(value)
    assert quic.quic_varint.parse(raw) == value
    assert quic.varint_at(raw, 0, len(raw)) == (value, len(raw))


@pytest.mark.parametrize("value", [-1, 1 << 62])
def test_varint_refuses_values_outside_0_to_2_to_the_62(value):
    with pytest.raises(cs.ConstructError):
        quic.quic_varint.build(value)


@pytest.mark.parametrize("encoded", ["c2197c5eff14e8", "9d7f3e", "7b", ""])
def test_varint_at_reports_missing_bytes_as_size_0(encoded):
    raw = bytes.fromhex(encoded)
    assert quic.varint_at(raw, 0, len(raw)) == (0, 0)


def test_varint_at_does_not_read_past_the_given_end():
    raw = bytes.fromhex("7bbd")
    assert quic.varint_at(raw, 0, 1) == (0, 0)


# --- quic_long_header on a real packet ---------------------------------------------------------


def test_quic_long_header_parses_the_client_initial_of_the_golden_quic_capture():
    # SPEC §14.3 quic_test_2 packet 1: a client Initial followed by 0xC8 filler.
    with PcapReader(str(GOLDEN / "quic_test_2" / "input.pcap")) as reader:
        _, frame, _ = next(iter(reader))
    d = decode(frame, len(frame))
    assert d.udp and d.dst_port == 443
    datagram = frame[d.payload_offset : d.payload_offset + d.payload_len]
    with_end = cs.Struct("header" / quic.quic_long_header, "header_end" / cs.Tell)
    parsed = with_end.parse(datagram)
    header = parsed.header
    first = header.fixed.first_byte
    assert (first.header_form, first.fixed_bit, first.long_packet_type) == (1, 1, quic.LONG_INITIAL)
    assert header.fixed.version == 1  # QUIC v1 (RFC 9000 §15)
    assert header.fixed.dcid_length == len(header.dcid) == datagram[5]
    assert header.dcid == datagram[6 : 6 + header.fixed.dcid_length]
    assert header.fixed.dcid_length <= quic.MAX_CID_LENGTH and header.scid_length <= quic.MAX_CID_LENGTH
    assert len(header.type_fields.token) == header.type_fields.token_length
    packet_end = parsed.header_end + header.type_fields.length
    assert packet_end < len(datagram)  # the Initial does not fill the datagram...
    filler = datagram[packet_end:]  # SPEC §14.3: 0xC8 filler that looks like a long header
    assert filler[0] == 0xC8 and filler[0] & 0x80
    assert filler[5] == 200  # ...whose DCID length (200) is over the limit
    assert len(datagram) >= 1200  # a client Initial datagram is padded to 1200 (RFC 9000 §14.1)
