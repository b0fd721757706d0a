"""The engine: frames flow one way through its sub-packages.

``sources`` (capture files, live sockets) -> ``analysis`` (decoder and protocol analyzers that
publish facts) -> the compiled policy (``pcapconstrictor.grammar``, rule files in ``rules/``)
-> ``sinks`` (capture writers, rotation, decision log).  ``config`` holds the keys every stage
reads; ``run`` wires a run together (pipeline, live loop, workers, stats, privileges); ``commands``
is the command line, one module per command.  ``api`` is the small public Python interface.
"""
