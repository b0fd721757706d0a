"""Shared test helpers: fixture paths and running the real CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
GOLDEN = FIXTURES / "golden"
GOLDEN_CASES = ("tls_test_2", "quic_test_2", "ipv6_ipv4_test_1")

# The compiled-policy cache of every CLI run the tests start: one directory for the session,
# not the user's ~/.cache (runs after the first of a policy and config use it warm).
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="pcapconstrictor-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)


def run_cli(*args: str, cwd: str | os.PathLike | None = None, stdin: bytes | None = None):
    """Run the installed console script's code in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pcapconstrictor.engine", *args],
        capture_output=True, cwd=cwd, input=stdin, timeout=300,
    )  # fmt: skip


def config_with_output(tmp_path: Path, config: Path, output: Path, extra: str = "") -> Path:
    """A copy of ``config`` whose capture.output is ``output`` (sections may repeat)."""
    text = config.read_text() + f"\n[capture]\noutput = {output}\n{extra}"
    path = tmp_path / f"{config.parent.name}.ini"
    path.write_text(text)
    return path


def tshark_count(path: Path) -> int:
    """Records tshark reads from ``path``; fails the test if tshark rejects it."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (Debian package tshark)")
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return len(out.stdout.split())


# --- Hypothesis profiles for the fuzz tests (issue 6) ---------------------------------------
# "ci" is the default: 1,500 examples per target, the whole fuzz suite in under a
# minute.  "long" is the run before a release (README "Fuzzing"):
#   python -m pytest tests/test_fuzz_*.py --hypothesis-profile=long -q
# Both skip Hypothesis' "explain" phase: on a slow target it can take minutes after a failure.
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

_FUZZ_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
settings.register_profile("ci", max_examples=1_500, deadline=None, phases=_FUZZ_PHASES,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.register_profile("long", max_examples=100_000, deadline=None, phases=_FUZZ_PHASES,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.load_profile("ci")


@pytest.fixture(scope="session")
def namespaces_available() -> None:
    """Skip (saying why) where network namespaces cannot be made: not root, no ip(8), ..."""
    from netns import netns_unavailable

    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def ns(namespaces_available):
    """Two network namespaces joined by a veth pair (tests/netns.py)."""
    from netns import Netns

    pair = Netns()
    yield pair
    pair.close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory, namespaces_available) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for the live tests' TLS server."""
    where = tmp_path_factory.mktemp("cert")
    key, crt = where / "key.pem", where / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=pcapconstrictor.test", "-days", "2", "-keyout", str(key),
                    "-out", str(crt)], check=True, capture_output=True, timeout=30)  # fmt: skip
    return crt, key


def pytest_collection_modifyitems(items) -> None:
    """A test that builds network namespaces is a live test: ``-m "not live"`` leaves them out
    (CI's second, pure-Python run checks the offline bytes only)."""
    for item in items:
        if "namespaces_available" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)
