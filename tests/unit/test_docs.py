"""The documentation's own promises: a short README, and links that lead somewhere.

The README is the front door and the rest lives in docs/; a moved section
leaves links behind, so every relative link (and its #anchor) must resolve.
"""

import re
import subprocess
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


# Every path a page names in backticks must be in the tree, so that a moved or deleted file
# leaves no page pointing at it. A name is a path when it has a "/" or a file ending.
PATH_PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "tests" / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
TICKED = re.compile(r"`([^`\n]+)`")
ENDINGS = (".py", ".yaml", ".yml", ".md", ".lua", ".j2", ".json", ".jsonl", ".sh", ".groovy", ".png", ".toml")
ENDINGS += (".txt", ".xml", ".properties", ".conf", ".mar", ".env", ".npz", ".pt", ".service", ".onnx")
MADE_AT_RUN_TIME = ("var/", "/")  # the stack's own files (var/: operations.md) and the system's
SOURCES = (".py", ".j2", ".lua", ".sh", ".yaml", ".yml", ".groovy", ".xml", ".toml")


def tree_files(root: Path) -> list[str]:
    """The files git tracks below root (its own checkout for the tree; a fixture's folder is walked)."""
    if (root / ".git").exists():
        listed = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True, check=True)
        return [line for line in listed.stdout.splitlines() if (root / line).exists()]
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def named_paths(text: str) -> list[str]:
    """The backticked names in a page that are paths: no spaces or placeholders, a "/" or a file ending;
    not an address, not an elided upstream path (`frontend/.../x.java`)."""
    names = []
    for name in (m.strip() for m in TICKED.findall(FENCE.sub("", text))):
        if not re.fullmatch(r"[\w./-]+", name) or ".." in name or re.match(r"\d", name):
            continue
        if "/" in name or name.endswith(ENDINGS):
            names.append(name)
    return names


def missing_paths(root: Path, pages: list[Path]) -> list[str]:
    """`page: name` for each path a page names that is neither in the tree (whole, or as the end of a
    path: `consumer.py`, `lua/twinserve/switch.lua`) nor a file the code itself writes at run time:
    a name the tree's sources spell out in a string (`restarts.json`, `artifacts/`)."""
    files = tree_files(root)
    known = set(files) | {str(parent) for f in files for parent in Path(f).parents}
    code = [f for f in files if f.endswith(SOURCES) and not f.startswith("tests/")]  # tests name what is gone
    sources = "\n".join((root / f).read_text(errors="replace") for f in code)
    top = {Path(f).parts[0] for f in files}
    missing = []
    for page in pages:
        for name in named_paths(page.read_text()):
            bare = name.removeprefix("./").rstrip("/")
            if name.startswith(MADE_AT_RUN_TIME) or bare in known or any(k.endswith("/" + bare) for k in known):
                continue
            written = re.search(rf"[\"'/]{re.escape(Path(bare).name)}[\"'/]?", sources)
            if Path(bare).parts[0] not in top and written:
                continue  # not a path of the tree: a file the code writes (in a model's artifacts, a colour's var)
            missing.append(f"{page.relative_to(root)}: {name}")
    return missing


def test_every_path_a_page_names_is_in_the_tree():
    missing = missing_paths(REPO_ROOT, PATH_PAGES)
    assert not missing, "pages name paths that do not exist:\n" + "\n".join(missing)


def test_a_page_naming_a_file_that_is_gone_is_caught(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "alive.py").write_text("STATE = 'restarts.json'\n")
    page = tmp_path / "page.md"
    page.write_text(
        "`pkg/alive.py`, `alive.py`, `restarts.json` (written by the code), `var/logs/`, `127.0.0.1:8080`,"
        " `make up`, upstream `a/.../b.java`, and two that are gone: `pkg/cli.py`, `gone.py`\n"
    )
    assert missing_paths(tmp_path, [page]) == ["page.md: pkg/cli.py", "page.md: gone.py"]


MAKE_NAMED = re.compile(r"`make ([a-z][\w-]*)")


def test_every_make_target_the_readme_names_exists():
    readme = (REPO_ROOT / "README.md").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(), re.M))
    named = set(MAKE_NAMED.findall(readme))
    assert named and not named - targets, f"README names make targets the Makefile lacks: {named - targets}"


def test_every_verb_the_readme_lists_is_a_cli_verb():
    from twinserve.cli import VERBS

    readme = (REPO_ROOT / "README.md").read_text()
    listing = re.search(r"`twinserve <verb>` \(([^)]*)\)", readme)
    assert listing, "README no longer lists the verbs as `twinserve <verb>` (...)"
    named = set(re.findall(r"`([a-z][\w-]*)`", listing.group(1)))
    verbs = set(VERBS)
    assert named == verbs, f"README lists verbs the CLI lacks: {named - verbs}; and misses {verbs - named}"
