"""Rule-file errors that point at ``file:line:column`` and show the line."""

from __future__ import annotations


class PolicyError(Exception):
    """A problem in a rule file; ``str()`` is ``file:line:col: message`` plus the
    offending line and a caret under the column."""

    def __init__(self, path: str, source: str, line: int, column: int, message: str) -> None:
        self.path, self.line, self.column, self.message = path, line, column, message
        if line <= 0:
            super().__init__(f"{path}: {message}")
            return
        lines = source.split("\n")  # lark counts lines by \n only
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        caret = " " * (max(column, 1) - 1) + "^"
        super().__init__(f"{path}:{line}:{column}: {message}\n    {text}\n    {caret}")
