"""Rule file text -> :class:`~.ast.Policy` (lark LALR, one method per grammar rule)."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources

import lark
from lark import Transformer, v_args

from . import ast
from .errors import PolicyError

_TOKEN_NAMES = {
    "NAME": "a name", "DOTTED": "a dotted name", "INT": "a number", "STRING": "a quoted string",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "LPAR": "'('", "RPAR": "')'",
    "COMMA": "','", "EQUAL": "'='", "DOLLAR": "'$'", "$END": "end of file",
}  # fmt: skip


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = resources.files(__package__).joinpath("policy.lark").read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe(expected: set[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(t, f"'{t.lower()}'") for t in expected})
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


@v_args(meta=True)
class _ToAst(Transformer):
    """Each method mirrors one grammar rule or alias of policy.lark."""

    def __init__(self, path: str, source: str, stack: list[str], policy: ast.Policy) -> None:
        super().__init__()
        self.path, self.source, self.stack = path, source, stack
        self.policy = policy
        self.current_section: str | None = None
        self.own_sections: set[str] = set()
        policy.sources[path] = source

    def _pos(self, meta_or_token) -> ast.Pos:
        return ast.Pos(meta_or_token.line, meta_or_token.column, self.path)

    def _error(self, pos: ast.Pos, message: str) -> PolicyError:
        return PolicyError(self.path, self.source, pos.line, pos.column, message)

    # --- expressions
    def number(self, meta, c):
        if len(c[0]) > 20:  # beyond any u64 a rule could compare with
            raise self._error(self._pos(c[0]), f"number too long ({len(c[0])} digits)")
        return ast.Number(self._pos(c[0]), int(c[0]))

    def true(self, meta, c):
        return ast.Bool(self._pos(meta), True)

    def false(self, meta, c):
        return ast.Bool(self._pos(meta), False)

    def config_ref(self, meta, c):
        return ast.ConfigRef(self._pos(meta), str(c[0]))

    def fact_ref(self, meta, c):
        return ast.FactRef(self._pos(c[0]), str(c[0]))

    def name_ref(self, meta, c):
        return ast.NameRef(self._pos(c[0]), str(c[0]))

    def call(self, meta, c):
        return ast.Call(self._pos(c[0]), str(c[0]), list(c[1:]))

    def not_(self, meta, c):
        return ast.Unary(self._pos(meta), "not", c[0])

    def or_(self, meta, c):
        return ast.Binary(c[0].pos, "or", c[0], c[1])

    def and_(self, meta, c):
        return ast.Binary(c[0].pos, "and", c[0], c[1])

    def compare(self, meta, c):
        return ast.Binary(self._pos(c[1]), str(c[1]), c[0], c[2])

    def member(self, meta, c):
        return ast.Binary(c[0].pos, "in", c[0], c[1])

    def arith(self, meta, c):
        return ast.Binary(self._pos(c[1]), str(c[1]), c[0], c[2])

    # --- clauses: returned as tagged tuples, folded into a Rule by `rule`
    def let_clause(self, meta, c):
        return ("let", self._pos(meta), (str(c[0]), c[1], self._pos(c[0])))

    def when_clause(self, meta, c):
        return ("when", self._pos(meta), c[0])

    def keep_clause(self, meta, c):
        return ("keep", self._pos(meta), (c[0], c[1]))

    def reason_clause(self, meta, c):
        return ("reason", self._pos(meta), ast.Outcome(str(c[0]), c[1] and str(c[1]), self._pos(c[0])))

    def otherwise_clause(self, meta, c):
        return ("otherwise", self._pos(meta), ast.Outcome(str(c[0]), c[1] and str(c[1]), self._pos(c[0])))

    def analyze_clause(self, meta, c):
        return ("analyze", self._pos(meta), (str(c[0]), self._pos(c[0])))

    def rule_id(self, meta, c):
        return c[0]

    def rule(self, meta, c):
        ident, message, clauses = c[0], c[1], c[2:]
        pos = self._pos(meta)
        if self.current_section is None:
            raise self._error(pos, "rule before any section: start the rules with 'on packet'")
        rule = ast.Rule(str(ident), _unquote(message), self.current_section, pos, self.path)
        seen: dict[str, ast.Pos] = {}
        for kind, cpos, value in clauses:
            if kind == "let":
                rule.lets.append(value)
                continue
            if kind in seen:
                raise self._error(cpos, f"rule '{rule.id}' has a second '{kind}' clause")
            seen[kind] = cpos
            if kind == "when":
                rule.when = value
            elif kind == "keep":
                rule.keep, rule.min_saved = value
            elif kind == "reason":
                rule.outcome = value
            elif kind == "otherwise":
                rule.otherwise = value
            elif kind == "analyze":
                rule.analyze, rule.analyze_pos = value
        self.policy.sections[self.current_section].append(rule)
        return rule

    # --- top-level items
    def policy_decl(self, meta, c):
        self.policy.name = str(c[0])
        self.policy.description = _unquote(c[1])

    def option(self, meta, c):
        return (str(c[0]), c[1], self._pos(c[0]))

    def analyzer_decl(self, meta, c):
        name = str(c[0])
        if name in self.policy.analyzers:
            raise self._error(self._pos(c[0]), f"options for analyzer '{name}' are given twice")
        options = {}
        for key, expr, pos in c[1:]:
            if key in options:
                raise self._error(pos, f"option '{key}' is given twice")
            options[key] = (expr, pos)
        self.policy.analyzers[name] = ast.AnalyzerOptions(name, options, self._pos(c[0]))

    def baseline_decl(self, meta, c):
        if self.policy.baseline is not None:
            raise self._error(self._pos(meta), "the baseline is given twice")
        self.policy.baseline = c[0]

    def declare_decl(self, meta, c):
        target = self.policy.declared_reasons if c[0] == "reason" else self.policy.declared_counters
        target.add(str(c[1]))

    def section(self, meta, c):
        name = str(c[0])
        if name in self.own_sections:
            raise self._error(self._pos(c[0]), f"section 'on {name}' appears twice")
        self.own_sections.add(name)
        self.current_section = name
        self.policy.sections.setdefault(name, [])  # an included file may have started it

    def include_decl(self, meta, c):
        """Merge another rule file, named relative to this one's directory, at this point."""
        pos, name = self._pos(meta), _unquote(c[0])
        target = self._include_target(pos, name)
        if len(self.stack) >= 8 or os.path.abspath(target) in self.stack:
            raise self._error(pos, f"include of '{name}' loops or nests too deep")
        try:
            with open(target, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise self._error(pos, f"cannot include '{name}': {e.strerror}") from None
        except (ValueError, UnicodeDecodeError) as e:  # not UTF-8 text
            raise self._error(pos, f"cannot include '{name}': {e}") from None
        sub = _ToAst(target, text, self.stack + [os.path.abspath(target)], self.policy)
        _transform(sub, text, target)
        self.policy.includes.append(target)
        self.current_section = None  # the including file must name its next section

    def _include_target(self, pos: ast.Pos, name: str) -> str:
        """Issue 13: a rule file may include only rule files in its own directory (or below it),
        else the shipped one of that name, so a rule file cannot make the recorder (often root)
        read, and echo in an error, any other file."""
        problem = _include_name_problem(name)
        bases = (os.path.dirname(self.path) or ".", _shipped_rules_dir())
        base = next((b for b in bases if os.path.lexists(os.path.join(b, name))), bases[0])
        target = os.path.join(base, name)
        if problem is None and os.path.lexists(target):
            real = os.path.realpath(target)
            inside = os.path.commonpath([real, os.path.realpath(base)]) == os.path.realpath(base)
            if not inside or not real.endswith(RULE_FILE_SUFFIX):
                problem = "it is a link to a file outside this rule file's directory or not a rule file"
        if problem is not None:
            raise self._error(pos, f"cannot include '{name}': {problem}")
        return target


RULE_FILE_SUFFIX = ".rules"


def _include_name_problem(name: str) -> str | None:
    if "\x00" in name:
        return "the path contains a NUL byte"
    if os.path.isabs(name):
        return "an absolute path; name a rule file relative to this file's directory"
    if ".." in name.split("/"):
        return "'..' leaves this file's directory"
    if not name.endswith(RULE_FILE_SUFFIX):
        return f"only rule files (*{RULE_FILE_SUFFIX}) can be included"
    return None


@lru_cache(maxsize=1)
def _shipped_rules_dir() -> str:
    return str(resources.files("pcapconstrictor.rules"))


def _unquote(token) -> str:
    return str(token)[1:-1] if token is not None else ""


def parse_policy(source: str, path: str) -> ast.Policy:
    """Parse rule-file text (and what it includes); errors raise :class:`PolicyError`."""
    policy = ast.Policy(path=path, source=source)
    _transform(_ToAst(path, source, [os.path.abspath(path)], policy), source, path)
    return policy


def _transform(transformer: _ToAst, source: str, path: str) -> None:
    try:
        tree = _parser().parse(source)
    except lark.exceptions.UnexpectedCharacters as e:
        raise PolicyError(path, source, e.line, e.column,
                          f"unexpected character {source[e.pos_in_stream]!r}") from None  # fmt: skip
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        what = "end of file" if tok.type == "$END" else f"'{tok}'"
        line, col = (tok.line, tok.column) if tok.type != "$END" else _end(source)
        raise PolicyError(path, source, line, col,
                          f"unexpected {what}; expected {_describe(e.expected)}") from None  # fmt: skip
    except lark.exceptions.UnexpectedEOF as e:
        line, col = _end(source)
        raise PolicyError(path, source, line, col,
                          f"unexpected end of file; expected {_describe(set(e.expected))}") from None
    _check_depth(tree, path, source)
    try:
        transformer.transform(tree)
    except lark.exceptions.VisitError as e:
        if isinstance(e.orig_exc, PolicyError):
            raise e.orig_exc from None
        raise


MAX_TREE_DEPTH = 200  # the transformer recurses; the checker's own limit (64) is stricter


def _check_depth(tree: lark.Tree, path: str, source: str) -> None:
    """Refuse absurdly deep parse trees before the recursive transform, at the
    position of the first node past the limit."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            meta = node.meta
            line, col = (meta.line, meta.column) if not meta.empty else (1, 1)
            raise PolicyError(path, source, line, col, "an expression nests too deeply")
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))


def _end(source: str) -> tuple[int, int]:
    lines = source.split("\n")  # as lark counts lines
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # a final newline does not start a line
    return len(lines), len(lines[-1]) + 1
