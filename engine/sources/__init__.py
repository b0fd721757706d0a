"""Frame sources: capture files read offline, the AF_PACKET socket and its live backends
(recvmsg, TPACKET_V3 ring), capture filters, the interface list.

A source yields ``(timestamp_ns, frame, wire_len)`` and knows nothing of TLS or of rules.
May import: ``pcapconstrictor.formats``, ``engine.config`` and its own modules.
"""
