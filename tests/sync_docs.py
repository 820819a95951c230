"""Copy each file shown in ``docs/*.md`` into its code block again.

The guides show configurations as plain code blocks, each after an
``<!-- file: deploy/NAME -->`` comment, so that they read well as Markdown; the files
under ``docs/deploy/`` are what the end-to-end tests run, and
``tests/test_docs.py`` fails when a block differs from its file.  After changing a
file, run ``python -m tests.sync_docs`` from the checkout to update the blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
SHOWN = re.compile(
    r"^(?P<head><!-- file: (?P<path>\S+) -->\n```\w*\n)(?P<text>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)


def sync(guide: Path) -> bool:
    """Rewrite the blocks of ``guide`` from their files; return whether it changed."""
    text = guide.read_text(encoding="utf-8")

    def copy(match: re.Match[str]) -> str:
        source = (DOCS / match["path"]).read_text(encoding="utf-8")
        return match["head"] + source + "```"

    new = SHOWN.sub(copy, text)
    if new != text:
        guide.write_text(new, encoding="utf-8")
    return new != text


def main() -> None:
    """Sync every guide, and name the ones that changed."""
    for guide in sorted(DOCS.glob("*.md")):
        if sync(guide):
            print(f"updated {guide.relative_to(DOCS.parent)}")


if __name__ == "__main__":
    main()
