"""The reasons a decision can carry and the protocol counters upstream prints (SPEC §10).

Rules cite them by name; the stats block prints the counters in this order.
"""

# SPEC §10: every reason a decision can carry, and the protocol counters.
UPSTREAM_REASONS = (
    "default", "parse_error", "non_ip", "tcp", "udp", "tls_candidate",
    "tls_application_data_constricted", "tls_malformed_fallback", "tls_no_record_fallback",
    "quic_candidate", "quic_long_header", "quic_short_header_matched",
    "quic_short_header_constricted", "quic_short_header_unknown_cid_fallback",
    "quic_short_header_dcid_mismatch_fallback", "quic_malformed_fallback",
)  # fmt: skip
UPSTREAM_COUNTERS = (
    "tls_appdata_constricted", "tls_fallback", "quic_long_header", "quic_short_matched",
    "quic_short_constricted", "quic_fallback",
)  # fmt: skip
