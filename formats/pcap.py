"""Classic libpcap file format: global header and record header.

Field names follow pcap/pcap.h and the libpcap file-format draft.
"""

import construct as cs

MAGIC_MICROSECONDS = 0xA1B2C3D4
MAGIC_NANOSECONDS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def _file_header(u16: cs.Construct, u32: cs.Construct, i32: cs.Construct) -> cs.Struct:
    return cs.Struct(
        "magic_number" / u32,
        "version_major" / u16,
        "version_minor" / u16,
        "thiszone" / i32,
        "sigfigs" / u32,
        "snaplen" / u32,
        "network" / u32,
    )


def _record_header(u32: cs.Construct) -> cs.Struct:
    return cs.Struct(
        "ts_sec" / u32,
        "ts_usec" / u32,  # nanoseconds in a nanosecond-magic file
        "incl_len" / u32,
        "orig_len" / u32,
    )


pcap_file_header_le = _file_header(cs.Int16ul, cs.Int32ul, cs.Int32sl)
pcap_file_header_be = _file_header(cs.Int16ub, cs.Int32ub, cs.Int32sb)
pcaprec_hdr_le = _record_header(cs.Int32ul)
pcaprec_hdr_be = _record_header(cs.Int32ub)
