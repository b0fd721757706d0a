"""The command line: ``parsers`` declares every form with argparse, ``cli`` dispatches, and
each command is one module (``offline``, ``live``, ``audit``, ``explain``, ``regress``) with
``run(args) -> exit status``.

May import anything; nothing imports it but the console script.
"""
