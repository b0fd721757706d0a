"""The parsed policy: plain dataclasses with source positions."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pos:
    line: int
    column: int
    path: str = ""


@dataclass
class Expr:
    pos: Pos


@dataclass
class Number(Expr):
    value: int


@dataclass
class Bool(Expr):
    value: bool


@dataclass
class ConfigRef(Expr):
    key: str


@dataclass
class FactRef(Expr):
    name: str


@dataclass
class NameRef(Expr):
    name: str


@dataclass
class Call(Expr):
    func: str
    args: list[Expr]


@dataclass
class Unary(Expr):
    op: str  # "not"
    operand: Expr


@dataclass
class Binary(Expr):
    op: str  # and or == != < <= > >= in + -
    left: Expr
    right: Expr


@dataclass
class Outcome:
    """A reason and the counter it increments (None: no counter)."""

    reason: str
    counter: str | None
    pos: Pos


@dataclass
class Rule:
    id: str
    message: str
    section: str
    pos: Pos
    path: str = ""
    lets: list[tuple[str, Expr, Pos]] = field(default_factory=list)
    when: Expr | None = None
    keep: Expr | None = None
    min_saved: Expr | None = None
    outcome: Outcome | None = None
    otherwise: Outcome | None = None
    analyze: str | None = None
    analyze_pos: Pos | None = None


@dataclass
class AnalyzerOptions:
    analyzer: str
    options: dict[str, tuple[Expr, Pos]]
    pos: Pos


@dataclass
class Policy:
    path: str
    source: str
    name: str = "unnamed"
    description: str = ""
    baseline: Expr | None = None
    analyzers: dict[str, AnalyzerOptions] = field(default_factory=dict)
    declared_reasons: set[str] = field(default_factory=set)
    declared_counters: set[str] = field(default_factory=set)
    sections: dict[str, list[Rule]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def rules(self) -> list[Rule]:
        return [r for rules in self.sections.values() for r in rules]
