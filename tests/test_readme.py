"""Python blocks in the README and docs run as written; the README has its two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


@pytest.mark.parametrize("doc", ["README.md", "docs/codebook.md"])
def test_python_blocks_in_docs_execute(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)
    assert blocks, f"{doc} has no Python example"
    namespace: dict[str, object] = {}  # blocks run in order in one namespace, like a session
    for block in blocks:
        exec(compile(block, doc, "exec"), namespace)


def test_readme_has_exactly_two_setup_commands() -> None:
    text = README.read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert len(bash) == 2
    assert "<!-- main-command -->" in text and "<!-- test-command -->" in text
    assert "pytest" in bash[1] and "geolip quickstart" in bash[0]


DOCS = sorted((ROOT / "docs").glob("*.md"))
UNRESOLVABLE = re.compile(
    r"\.\./shared"  # a folder outside the repository
    r"|spec §|§\s?[A-Z0-9]|upstream\.md|spec H\.\d|\[INFER\]|\bU\d\b"  # a spec readers lack
    r"|/tmp/"  # temporary paths of someone's machine
    r"|\bissue[ -]?#?\d+|(?<![\w/&#])#\d+\b"  # issue numbers of a tracker that is not linked
    r"|\bseed 00\d\b|device tool|\bsession\b|the issue",  # the writers' wording
    flags=re.I,
)


def test_readme_links_every_doc_and_points_to_the_tutorial_first() -> None:
    text = README.read_text()
    listed = re.findall(r"^- `(docs/[\w.-]+)`", text.split("## Documents", 1)[1], flags=re.M)
    assert listed[0] == "docs/tutorial.md"
    missing = [str(d.relative_to(ROOT)) for d in DOCS if str(d.relative_to(ROOT)) not in listed]
    assert not missing, f"README's document list lacks {missing}"


@pytest.mark.parametrize("doc", ["README.md", *(str(d.relative_to(ROOT)) for d in DOCS)])
def test_docs_hold_no_reference_a_reader_cannot_follow(doc: str) -> None:
    text = (ROOT / doc).read_text()
    found: dict[str, list[int]] = {}
    for m in UNRESOLVABLE.finditer(text):
        found.setdefault(m.group().lower(), []).append(text.count("\n", 0, m.start()) + 1)
    assert not found, (
        f"{doc} refers to things its readers do not have (line numbers): {found}; replace each "
        "with a short summary of what it said, or remove it"
    )
