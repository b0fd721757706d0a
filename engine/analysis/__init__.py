"""Decoding and protocol analyzers: the decoder, the fact catalogue, bounded flow tables, one
module per protocol, the analyzer registry and the reasons rules may cite.

Analyzers publish facts about a packet; they never decide what is kept (rule files do).
``decode``, ``flow_table``, ``quic`` and ``tls`` are compiled with mypyc (``engine.compiled``).
May import: ``pcapconstrictor.formats``, ``engine.config`` and its own modules.
"""
