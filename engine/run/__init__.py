"""A run wired together: the pipeline (frames -> compiled policy -> sink, with stats), the live
loop, capture workers, privilege drop, and the options offline and live runs share.

May import everything below it (sources, analysis, sinks, config, grammar); never ``commands``.
"""
