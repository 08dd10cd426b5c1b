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
