"""Frames cut from a classic PCAP input, with the records they came from.

A classic PCAP record that the policy keeps whole is, byte for byte, the
record our writer would produce for it when the input is little-endian with
microsecond timestamps (the only format we write).  The reader hands such
runs over with the frames, so the writer can copy them as they are instead of
packing a new header per record; a source without them (live capture, other
formats) passes a plain list.
"""

from __future__ import annotations


class RecordBatch(list):
    """A list of ``(ts_ns, data, orig_len)`` frames; when ``records`` is set,
    ``records[records_at:]`` holds the first ``records_count`` frames' records
    back to back, each exactly as the PCAP writer would write that frame whole
    (little endian, microseconds below 10**6, orig_len >= incl_len)."""

    linktype = 1  # LINKTYPE_ETHERNET; a non-Ethernet input sets its own on each batch
    records: bytes | None = None
    records_at = 0
    records_count = 0
