"""The docs a newcomer can hold (issue 20): a short README that links to pages that exist, and
nothing that points outside the repository."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_the_front_door_under_250_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


def test_every_relative_link_in_the_readme_and_docs_reaches_a_file():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [f"{page.name}: {target}" for page in pages for target in LINK.findall(page.read_text())
              if "://" not in target and not (page.parent / target).exists()]  # fmt: skip
    assert broken == []


def test_nothing_in_the_repository_points_to_the_shared_folder_beside_it():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    pointing = [name for name in files.stdout.split()
                if name.endswith((".md", ".py", ".rules", ".ini", ".yaml", ".toml", ".sh"))
                and name != "tests/test_docs.py" and "../shared" in (ROOT / name).read_text()]  # fmt: skip
    assert pointing == []
