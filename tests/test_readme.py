"""The README's generated blocks match the code and the committed results."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("update_readme",
                                              ROOT / "experiments" / "update_readme.py")
update_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_readme)


def test_generated_blocks_are_up_to_date():
    text = (ROOT / "README.md").read_text()
    assert update_readme.render(text) == text, "run: python experiments/update_readme.py"


def test_every_scenario_key_is_in_the_reference():
    import dataclasses

    from sim.scenario import SECTIONS
    text = (ROOT / "README.md").read_text()
    for cls in SECTIONS.values():
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text, f.name


def test_readme_shows_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
