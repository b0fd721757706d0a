"""SSH transport layer (RFC 4253): the identification string and the binary packet
header, in clear until SSH_MSG_NEWKEYS (§4.2, §6, §7.3)."""

import construct as cs

IDENTIFICATION_PREFIX = b"SSH-"  # §4.2: "SSH-protoversion-softwareversion ... CR LF"
MAX_IDENTIFICATION_BYTES = 8192  # §4.2 allows 255 per line; more without a LF is not SSH
SSH_MSG_NEWKEYS = 21  # §7.3: everything after it in that direction is encrypted
# §6: the unencrypted packet length (without packet_length itself) is a multiple of 8,
# has at least 4 bytes of padding, and stays within what OpenSSH accepts (PACKET_MAX_SIZE).
BLOCK_SIZE = 8
MIN_PADDING = 4
MAX_PACKET_LENGTH = 256 * 1024

binary_packet_header = cs.Struct(
    "packet_length" / cs.Int32ub,  # bytes after this field: padding_length, payload, padding
    "padding_length" / cs.Int8ub,
    "message_code" / cs.Int8ub,  # the payload's first byte
)
