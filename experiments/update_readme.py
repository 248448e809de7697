"""Fill the generated blocks of README.md from the code and from results/.

Question: does the README say what the code and the latest results say? Every number in the
README's generated blocks comes from a file that a script under experiments/ wrote; this script
copies them in (run by `make figures` after the experiments). tests/test_readme.py fails when a
block is out of step.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.results import write_atomic  # noqa: E402
from sim.scenario import reference_markdown  # noqa: E402

BLOCK = re.compile(r"(<!-- BEGIN generated:(\w+) -->\n)(.*?)(<!-- END generated:\2 -->)", re.S)


def section(path: Path, heading: str) -> str:
    """The body of the `## heading` section of a generated Markdown file ('' if absent)."""
    if not path.exists():
        return ""
    text = path.read_text()
    m = re.search(rf"^##+ {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1).strip() if m else ""


def _relink(text: str, base: str) -> str:
    """Make relative links and images of a results README work from the top-level README."""
    return re.sub(r"\]\((?!https?:|/|#)([^)]+)\)", lambda m: f"]({base}/{m.group(1)})", text)


def _from(path: str, *headings: str, missing: str) -> str:
    p = ROOT / path
    parts = [section(p, h) for h in headings]
    body = "\n\n".join(x for x in parts if x)
    if not body:
        return f"_{missing}_"
    return _relink(body, str(Path(path).parent)) + f"\n\n(From [{path}]({path}).)"


def index(path: str, missing: str) -> str:
    """One line per experiment of results/README.md: its title (linked) and its answer."""
    p = ROOT / path
    if not p.exists():
        return f"_{missing}_"
    text = p.read_text()
    rows = []
    for m in re.finditer(r"^## \[([^\]]+)\]\(([^)]+)\)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        answer = re.search(r"\*\*Answer\.\*\* (.*)", m.group(3))
        link = f"{Path(path).parent}/{m.group(2)}"
        rows.append(f"* **[{m.group(1)}]({link})**: {answer.group(1) if answer else ''}")
    return "\n".join(rows) + f"\n\n(From [{path}]({path}).)"


def preamble(path: str, missing: str) -> str:
    """A generated README's text before its first `## ` heading, minus its title line."""
    p = ROOT / path
    if not p.exists():
        return f"_{missing}_"
    text = p.read_text().split("\n## ", 1)[0]
    body = "\n".join(x for x in text.splitlines() if not x.startswith("# ")).strip()
    return _relink(body, str(Path(path).parent)) + f"\n\n(From [{path}]({path}).)"


def blocks() -> dict[str, str]:
    return {
        "reference": reference_markdown().strip(),
        "seed_story": _from("results/seed_story/README.md", "Figures", "Answer",
                            missing="Not generated yet: run `make demo`."),
        "sweep_example": _from("results/sweep_example/README.md", "Answer",
                               missing="Not generated yet: run the sweep command above."),
        "experiments": index("results/README.md", missing="Not generated yet: run `make figures`."),
        "validation": "**Against real Postfix 3.7 on loopback.** " + preamble(
            "results/validation/postfix/README.md",
            missing="Not generated yet: run experiments/validate_postfix.py (as root).")
        + "\n\n**Against real Exim 4.96 on loopback.** " + preamble(
            "results/validation/exim/README.md",
            missing="Not generated yet: run experiments/validate_exim.py (as root).")
        + "\n\n**Against real sendmail 8.17 on loopback.** " + preamble(
            "results/validation/sendmail/README.md",
            missing="Not generated yet: run experiments/validate_sendmail.py (as root).")
        + "\n\n**qmail and Exchange** cannot run here: "
        "[results/validation/other_mtas/README.md](results/validation/other_mtas/README.md) "
        "says why, what their schedules rest on and what would validate them."
        + "\n\n**Against queueing theory.** " + _from(
            "results/validation/theory/README.md", "Answer",
            missing="Not generated yet: run experiments/validate_theory.py."),
        "benchmark": _from("results/benchmark/README.md", "Answer",
                           missing="Not generated yet: run `make bench`."),
        "walkthrough": _from("results/walkthrough/README.md", "Answer",
                             "Commands and their output",
                             missing="Not generated yet: run experiments/walkthrough.py."),
    }


def render(text: str) -> str:
    b = blocks()
    return BLOCK.sub(lambda m: f"{m.group(1)}{b[m.group(2)]}\n{m.group(4)}", text)


def main() -> None:
    readme = ROOT / "README.md"
    write_atomic(readme, render(readme.read_text()))


if __name__ == "__main__":
    main()
