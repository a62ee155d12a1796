"""The documentation's own promises: a short README, and links that lead somewhere.

The README is the front door and the rest lives in docs/; a moved section
leaves links behind, so every relative link (and its #anchor) must resolve.
"""

import re
from pathlib import Path

import pytest

from tests.checkout import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def test_anchor_follows_github():
    assert anchor("Drift detection's cost (`make bench-drift`)") == "drift-detections-cost-make-bench-drift"
    assert anchor("Path 4: a drift message") == "path-4-a-drift-message"


def test_readme_is_short():
    lines = (REPO_ROOT / "README.md").read_text().count("\n")
    assert lines <= 150, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_readme_links_every_doc():
    readme = (REPO_ROOT / "README.md").read_text()
    for doc in sorted((REPO_ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README.md does not link docs/{doc.name}"
