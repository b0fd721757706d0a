"""The compiled policy, cached between runs (issue 21 item 3: start-up).

Parsing a rule file needs lark and the checker (~90 ms a run); the result, the generated
evaluator source with its decisions, port sets and analyzer options, depends only on the
program, the rule files' text and the config values the code generator folds in.  One entry
per top rule file: its name is the sha256 of (format, program version, build, Python, the
file's real path and text); inside it up to ``MAX_VARIANTS`` compiled forms, most recent
first, each with the rest of its key, checked on every load: each included file's real path
and sha256, and the value of every config key that was read.  Several variants, so that runs
with different configs on one host (two interfaces, a benchmark's alternating variants) each
find theirs instead of recompiling and overwriting the other's.

Safe against tampering (a root recorder must not run code others wrote): the directory and
the entry must be owned by this euid and writable by nobody else, both opened without
following links; an entry is written to a temporary file and renamed.  Anything unexpected
(a corrupt entry, another version) is a miss: the policy is parsed and the entry rewritten.
``PCAPCONSTRICTOR_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys

from pcapconstrictor.engine.compiled import build_description
from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.version import VERSION
from pcapconstrictor.grammar.evaluator import CompiledPolicy, Decision, RuleRef

FORMAT = 2  # of an entry; part of the key
MAX_VARIANTS = 8  # compiled forms kept per top rule file
APP_DIR = "pcapconstrictor-afpacket"


def cache_dir() -> str | None:
    """$XDG_CACHE_HOME/pcapconstrictor-afpacket, else ~/.cache/... (root: root's home, not $HOME)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        if os.geteuid() == 0:
            import pwd

            home = pwd.getpwuid(0).pw_dir
        else:
            home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, APP_DIR)


def enabled() -> bool:
    return os.environ.get("PCAPCONSTRICTOR_NO_CACHE", "") in ("", "0")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_name(path: str, text: bytes) -> str:
    """The file an entry for this top rule file lives in."""
    head = [FORMAT, VERSION, build_description(), sys.version, os.path.realpath(path), _sha256(text)]
    return _sha256(json.dumps(head).encode()) + ".json"


def _safe(st: os.stat_result, kind: int) -> bool:
    """Ours, of the expected kind, and writable by no one else."""
    return stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _open_dir(create: bool) -> int | None:
    """A descriptor of the cache directory, or None if it is missing or not safe to use."""
    path = cache_dir()
    if path is None:
        return None
    if create:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if not _safe(os.fstat(fd), stat.S_IFDIR):
        os.close(fd)
        return None
    return fd


def read_entry(name: str) -> dict | None:
    """The entry stored under ``name`` if it is there, ours and well-formed JSON; else None."""
    dir_fd = _open_dir(create=False)
    if dir_fd is None:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as f:
        if not _safe(os.fstat(f.fileno()), stat.S_IFREG):
            return None
        try:
            entry = json.loads(f.read())
        except ValueError:
            return None
    return entry if isinstance(entry, dict) else None


def variants(entry: dict | None) -> list[dict]:
    """The compiled forms an entry holds, most recent first (none if it has another shape)."""
    found = entry.get("variants") if entry is not None else None
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def with_variant(entry: dict | None, variant: dict) -> dict:
    """``entry`` with ``variant`` first, replacing one of the same key, at most MAX_VARIANTS."""
    key = (variant["config"], variant["includes"])
    rest = [v for v in variants(entry) if (v.get("config"), v.get("includes")) != key]
    return {"variants": [variant, *rest[: MAX_VARIANTS - 1]]}


def write_entry(name: str, entry: dict) -> bool:
    """Store ``entry`` atomically (temporary file, then rename); False if the cache is unusable."""
    dir_fd = _open_dir(create=True)
    if dir_fd is None:
        return False
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)  # fmt: skip
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(entry).encode())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        return False
    finally:
        os.close(dir_fd)


def _jsonable(value: object) -> object:
    if isinstance(value, (tuple, list, frozenset, set)):
        return sorted(value) if isinstance(value, (frozenset, set)) else list(value)
    return value


def read_rule_text(path: str) -> str | None:
    """A rule file's text as the parser reads it (UTF-8, universal newlines); None if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def text_digest(text: str) -> str:
    return _sha256(text.encode())


def to_variant(compiled: CompiledPolicy, includes: list[dict], config_read: dict[str, object]) -> dict:
    """The JSON form of a compiled (untraced) policy and the rest of its key."""
    return {
        "path": compiled.path,
        "source": compiled.source,
        "decisions": [[d.rule.id, d.rule.section, getattr(d.rule, "message", ""), d.reason, d.counter, d.kind]
                      for d in compiled.decisions],  # fmt: skip
        "constants": {name: sorted(value) for name, value in compiled.constants.items()},  # type: ignore[call-overload]
        "analyzer_options": compiled.analyzer_options,
        "includes": includes,
        "config": {key: _jsonable(value) for key, value in sorted(config_read.items())},
    }


def still_valid(variant: dict, config: Config) -> bool:
    """The rest of the key: the same included files, the same values of the config keys read."""
    for key, value in variant["config"].items():
        if key not in config.values or _jsonable(config[key]) != value:
            return False
    for inc in variant["includes"]:
        text = read_rule_text(inc["path"])
        if text is None or os.path.realpath(inc["path"]) != inc["real"] or text_digest(text) != inc["sha256"]:
            return False
        if any(os.path.lexists(os.path.join(d, inc["name"])) for d in inc.get("absent_from", ())):
            return False  # a rule file of that name now shadows the shipped one
    return True


def from_variant(variant: dict) -> CompiledPolicy:
    decisions = [Decision(RuleRef(rid, section, message), reason, counter, kind)
                 for rid, section, message, reason, counter, kind in variant["decisions"]]  # fmt: skip
    constants = {name: frozenset(value) for name, value in variant["constants"].items()}
    options = variant["analyzer_options"]
    return CompiledPolicy(variant["path"], variant["source"], decisions, constants, options)
