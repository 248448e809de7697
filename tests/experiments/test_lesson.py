"""experiments/lesson.md, the teachers' lesson: its python blocks run in order in one session
started in the project's folder, and every assert in them holds (so the page never rots)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "experiments" / "lesson.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", LESSON.read_text(), re.S | re.M)


def test_the_lesson_has_its_steps():
    text = LESSON.read_text()
    for step in ("450 and 550", "retry schedule", "Little's law", "The fix", "Try it"):
        assert step in text
    assert len(blocks()) >= 5


def test_the_lesson_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the page reads experiments/scenarios/ from the project's folder
    namespace: dict = {}
    for k, code in enumerate(blocks()):
        code = code.replace('"lesson_queue.png"', repr(str(tmp_path / "lesson_queue.png")))
        exec(compile(code, f"{LESSON.name} block {k + 1}", "exec"), namespace)
    assert (tmp_path / "lesson_queue.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "first ages (s): [0.0, 299.0, 599.0" in out and "lambda x W" in out
