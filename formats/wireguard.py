"""WireGuard messages (the WireGuard whitepaper, §5.4): three handshake messages of fixed
size and the transport data message, each opening with a type byte and three zero bytes."""

import construct as cs

HANDSHAKE_INITIATION = 1
HANDSHAKE_RESPONSE = 2
COOKIE_REPLY = 3
TRANSPORT_DATA = 4
POLY1305_TAG = 16  # every encrypted field ends with one; an empty packet is a keepalive

message_header = cs.Struct(
    "message_type" / cs.Int8ub,
    "reserved_zero" / cs.Bytes(3),
)

handshake_initiation = cs.Struct(
    "message_type" / cs.Int8ub,
    "reserved_zero" / cs.Bytes(3),
    "sender_index" / cs.Int32ul,
    "unencrypted_ephemeral" / cs.Bytes(32),
    "encrypted_static" / cs.Bytes(32 + POLY1305_TAG),
    "encrypted_timestamp" / cs.Bytes(12 + POLY1305_TAG),
    "mac1" / cs.Bytes(16),
    "mac2" / cs.Bytes(16),
)

handshake_response = cs.Struct(
    "message_type" / cs.Int8ub,
    "reserved_zero" / cs.Bytes(3),
    "sender_index" / cs.Int32ul,
    "receiver_index" / cs.Int32ul,
    "unencrypted_ephemeral" / cs.Bytes(32),
    "encrypted_nothing" / cs.Bytes(POLY1305_TAG),
    "mac1" / cs.Bytes(16),
    "mac2" / cs.Bytes(16),
)

cookie_reply = cs.Struct(
    "message_type" / cs.Int8ub,
    "reserved_zero" / cs.Bytes(3),
    "receiver_index" / cs.Int32ul,
    "nonce" / cs.Bytes(24),
    "encrypted_cookie" / cs.Bytes(16 + POLY1305_TAG),
)

# The header kept of every data packet: what a reader needs to follow the tunnel.
transport_data_header = cs.Struct(
    "message_type" / cs.Int8ub,
    "reserved_zero" / cs.Bytes(3),
    "receiver_index" / cs.Int32ul,
    "counter" / cs.Int64ul,
)

# type -> exact size; a message of another size is not WireGuard
HANDSHAKE_SIZES = {
    HANDSHAKE_INITIATION: handshake_initiation.sizeof(),  # 148
    HANDSHAKE_RESPONSE: handshake_response.sizeof(),  # 92
    COOKIE_REPLY: cookie_reply.sizeof(),  # 64
}
# the header plus an empty encrypted packet's tag (a keepalive); padding makes longer ones vary
TRANSPORT_DATA_MIN_SIZE = transport_data_header.sizeof() + POLY1305_TAG
