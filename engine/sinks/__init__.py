"""Where records go: classic PCAP and pcapng writers, rotation, the decision log, and the
factory that opens the configured output.

May import: ``pcapconstrictor.formats``, ``engine.config``, ``engine.analysis`` and
``pcapconstrictor.grammar`` (to name facts in the decision log), ``engine.sources.record_batch``
(whole input records copied as they are) and ``engine.sources.pcapng_reader`` (a pcapng
output keeps the input's sections), ``engine.version``, and its own modules.
"""
