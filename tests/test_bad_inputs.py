"""The bad-input corpus (tests/data/bad/): every file is one hostile or mistaken input.

Each file's first line is `# key: <the key the error must name>`, an optional second line
`# args: <more arguments>` (split on spaces). Each runs as `relaysim run FILE ARGS` from a copy
of the corpus three folders below a scratch folder, so that a name like ../../escaped would
land inside it: exit status 2, one line on stderr naming the key, no traceback, nothing on
stdout, and nothing written anywhere (the scratch tree is unchanged, no /tmp/relaysim-* path
appears). In-process through sim.cli.main, the command line's own entry point, to keep 160
cases fast; a sample runs again as a real `python -m sim` subprocess.
tests/data/bad/replay/ holds the same for `relaysim replay`: logs (a file that is not a
Postfix log, binary, a folder) and good logs with bad arguments.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sim import cli

CORPUS = Path(__file__).resolve().parent / "data" / "bad"
FILES = sorted(p.name for p in CORPUS.glob("*.toml"))
ESCAPES = [Path("/tmp/relaysim-escaped"), Path("/tmp/relaysim-abs")]


def expectation(name: str) -> tuple[str, list[str]]:
    lines = (CORPUS / name).read_bytes().split(b"\n")
    first = lines[0].decode("ascii")
    assert first.startswith("# key: "), name
    args = lines[1].decode("ascii", "replace") if len(lines) > 1 else ""
    return first[len("# key: "):], args[len("# args: "):].split() if args.startswith(
        "# args: ") else []


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    work = root / "a" / "b" / "corpus"
    shutil.copytree(CORPUS, work)
    return root, work


def test_the_corpus_has_at_least_100_cases():
    assert len(FILES) >= 100
    assert all(expectation(n)[0] for n in FILES)


@pytest.mark.parametrize("name", FILES)
def test_bad_input(scratch, name, capsys, monkeypatch):
    root, work = scratch
    key, args = expectation(name)
    before = tree(root)
    monkeypatch.chdir(work)
    status = cli.main(["run", name, *args])
    out, err = capsys.readouterr()
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("relaysim: error: ") and "Traceback" not in err
    assert key in err, err
    assert err.isprintable() or err.endswith("\n") and err[:-1].isprintable()
    assert out == ""
    assert tree(root) == before
    assert not any(p.exists() for p in ESCAPES)


@pytest.mark.parametrize("name", FILES[::20])
def test_bad_input_through_the_command(scratch, name):
    root, work = scratch
    key, args = expectation(name)
    before = tree(root)
    proc = subprocess.run([sys.executable, "-m", "sim", "run", name, *args], cwd=work,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and key in proc.stderr
    assert tree(root) == before


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero"])
def test_the_scenario_must_be_a_regular_file(tmp_path, kind, capsys, monkeypatch):
    path = {"directory": tmp_path / "dir.toml", "fifo": tmp_path / "fifo.toml",
            "dev-zero": Path("/dev/zero")}[kind]
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    assert cli.main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("relaysim: error: scenario = ")
    assert "regular" in err
    assert tree(tmp_path) == before


# --- relaysim replay MAILLOG: its own corpus of logs --------------------------------------------

BAD = CORPUS / "replay"


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()))
def test_bad_replay_input(name, tmp_path, capsys, monkeypatch):
    """tests/data/bad/replay/: each file's first line names the key the error must name
    (`# key: ...`), an optional second line the arguments after it (`# args: ...`); one line,
    exit status 2, nothing written."""
    lines = (BAD / name).read_bytes().split(b"\n")
    key = lines[0].decode()[len("# key: "):]
    args = lines[1].decode()[len("# args: "):].split() if lines[1].startswith(b"# args: ") \
        else []
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    args = [str(BAD / name) if a == "SELF" else a.replace("{bad}", str(BAD.parent))
            for a in args] or [str(BAD / name)]
    status = cli.main(["replay", *args, "--out", "out", "--maillog", "logs"])
    out, err = capsys.readouterr()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("relaysim: error: "), err
    assert key in err, err
    assert out == "" and sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
