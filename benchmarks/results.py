"""Keep benchmarks/RESULTS.md as one file of ``## sections``, each rewritten only by the script that owns it."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmarks\n"


def write_section(title: str, body: str, path: Path = RESULTS) -> Path:
    """Replace the ``## title`` section of RESULTS.md with ``body`` (append it when absent)."""
    text = path.read_text() if path.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
    return path
