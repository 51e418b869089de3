"""The documentation stays true to the code: every setting common/config.py reads is in
docs/configuration.md; every relative link of README.md, CONTRIBUTING.md and docs/*.md leads to a file,
and to a heading of it, that exists; every section of the product rules and every decision that the code
or the docs cite exists; the README stays short and names only make targets that exist."""
import re
import unicodedata
from pathlib import Path

from common.config import read_settings

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
DOCS = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_GLOBS = ("common/**/*.py", "services/**/*.py", "gateway/**/*.py", "gateway/**/*.js", "devtools/**/*.py",
              "bench/**/*.py", "tests/**/*.py")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SECTION_CITED = re.compile(r"§\s*(\d+)")
DECISION_CITED = re.compile(r"(?:decisions\.md,?|\bdecisions?)\s+(\d+)(?:\s*(?:–|-|to|and)\s*(\d+))?")


def code_files():
    return sorted({path for pattern in CODE_GLOBS for path in ROOT.glob(pattern) if "__pycache__" not in path.parts})


def prose(path):
    """The lines of a markdown file outside its fenced code blocks."""
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield line


def slug(heading):
    """A heading's anchor as GitHub makes it: lower case, punctuation and symbols dropped, spaces as dashes."""
    kept = "".join(c for c in heading.strip().lower()
                   if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path):
    seen, found = {}, set()
    for line in prose(path):
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            found.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return found


class RecordingEnvironment(dict):
    """An empty environment that notes every variable asked of it."""

    def __init__(self):
        super().__init__()
        self.asked = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)


def test_every_setting_is_documented():
    environment = RecordingEnvironment()
    read_settings(environment)
    documented = (ROOT / "docs/configuration.md").read_text()
    assert len(environment.asked) > 30
    undocumented = sorted(name for name in environment.asked if f"`{name}`" not in documented)
    assert undocumented == [], f"settings missing from docs/configuration.md: {undocumented}"


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    broken = []
    for doc in DOCS:
        for line in prose(doc):
            for target in LINK.findall(line):
                if target.startswith(("http://", "https://", "mailto:")):
                    continue
                file, _, anchor = target.partition("#")
                linked = (doc.parent / file).resolve() if file else doc
                if not linked.exists():
                    broken.append(f"{doc.name}: {target} (no such file)")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []


def test_every_cited_section_of_the_product_rules_exists():
    sections = {int(n) for n in re.findall(r"^## §(\d+) ", (ROOT / "docs/product.md").read_text(), re.M)}
    assert sections == set(range(1, max(sections) + 1))
    cited = {}
    for path in [*code_files(), *DOCS]:
        for number in SECTION_CITED.findall(path.read_text()):
            cited.setdefault(int(number), path.relative_to(ROOT))
    assert {n: where for n, where in cited.items() if n not in sections} == {}


def test_every_cited_decision_exists():
    records = [int(n) for n in re.findall(r"^### (\d+)\. ", (ROOT / "docs/decisions.md").read_text(), re.M)]
    assert len(records) == len(set(records)), "a decision number is used twice"
    missing = []
    for path in [*code_files(), *DOCS]:
        for first, last in DECISION_CITED.findall(path.read_text()):
            missing += [f"{path.relative_to(ROOT)}: {n}" for n in (first, last) if n and int(n) not in records]
    assert missing == []


def test_the_readme_is_short_and_names_make_targets_that_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"(?:^|`|\$\()make (?:-s )?([a-z][a-z-]*)", text, re.M))
    assert {"run", "test"} <= named
    assert named - targets == set()
