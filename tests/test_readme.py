"""The README's Python blocks run as written, and its two set-up commands are where CI looks."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_blocks_execute() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_readme_has_exactly_two_setup_commands() -> None:
    text = README.read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert len(bash) == 2
    assert "<!-- main-command -->" in text and "<!-- test-command -->" in text
    assert "pytest" in bash[1] and "geolip codebook info" in bash[0]
