"""The key of a TCP/UDP direction (engine/analysis/flow_keys.py): one slice of the frame where
addresses and ports lie side by side, built where they do not, and the same either way."""

from __future__ import annotations

import packets
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.flow_keys import (
    addresses_in,
    connection_key,
    connection_key_in,
    direction_key,
    key_in,
    reverse_key_in,
    sender_first,
    sender_first_in,
)


def frame(protocol: str, src: bytes, dst: bytes, sport: int, dport: int, options: bytes) -> bytes:
    if protocol == "tcp":
        inner, number = packets.tcp(sport, dport, b"hello"), 6
    else:
        inner, number = packets.udp(sport, dport, b"hello"), 17
    if len(src) == 16:
        return packets.ethernet(0x86DD, packets.ipv6(number, inner, src, dst))
    return packets.ethernet(0x0800, packets.ipv4(number, inner, src, dst, options=options))


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@given(v6=st.booleans(), words=st.integers(0, 10), sport=st.integers(0, 65535), dport=st.integers(0, 65535),
       a=st.binary(min_size=16, max_size=16), b=st.binary(min_size=16, max_size=16))  # fmt: skip
def test_the_key_read_from_a_frame_is_the_key_of_its_direction(protocol, v6, words, sport, dport, a, b):
    src, dst = (a, b) if v6 else (a[:4], b[:4])
    f = frame(protocol, src, dst, sport, dport, b"\x01" * (4 * words))  # IPv4 options (NOPs) between
    d = decode(f, len(f))
    assert d.ok and (d.src_addr, d.dst_addr) == (src, dst)
    version, net, transport = d.ip_version, d.network_offset, d.transport_offset
    assert key_in(f, version, net, transport) == direction_key(src, dst, sport, dport)
    assert reverse_key_in(f, version, net, transport) == direction_key(dst, src, dport, sport)
    first = sender_first(src, dst, sport, dport)
    assert sender_first_in(f, version, net, sport, dport) == first
    connection = connection_key(src, dst, sport, dport)
    assert connection_key_in(f, version, sport, dport, net, transport) == (connection, first)
    assert addresses_in(f, version, net, True) == src + dst
    assert addresses_in(f, version, net, False) == dst + src


@given(a=st.binary(min_size=4, max_size=4), sport=st.integers(0, 65535), dport=st.integers(0, 65535))
def test_two_endpoints_on_one_address_are_ordered_by_port(a, sport, dport):
    f = frame("udp", a, a, sport, dport, b"")
    d = decode(f, len(f))
    assert sender_first_in(f, 4, d.network_offset, sport, dport) == (sport <= dport)


def test_directions_and_families_have_distinct_keys():
    keys = {direction_key(packets.CLIENT4, packets.SERVER4, 50000, 443),
            direction_key(packets.SERVER4, packets.CLIENT4, 443, 50000),
            direction_key(packets.CLIENT4, packets.SERVER4, 443, 50000),
            direction_key(packets.CLIENT6, packets.SERVER6, 50000, 443)}  # fmt: skip
    assert len(keys) == 4


def test_a_connection_has_one_key_from_either_end():
    a, b = packets.CLIENT4, packets.SERVER4
    assert connection_key(a, b, 50000, 443) == connection_key(b, a, 443, 50000)
    assert connection_key(b, a, 443, 50000) == direction_key(a, b, 50000, 443)
    assert connection_key(a, a, 9, 8) == direction_key(a, a, 8, 9)  # one address: the smaller port first
