"""check_writable (sim/postfix/files.py): output paths refused with one line, nothing created."""

import os

import pytest

from sim.errors import ScenarioError
from sim.postfix.files import check_writable


def test_accepts_new_and_existing_paths(tmp_path):
    assert check_writable(tmp_path / "a" / "b", "--maillog", folder=True) == tmp_path / "a" / "b"
    assert check_writable(tmp_path / "m.om", "--metrics") == tmp_path / "m.om"
    assert check_writable(tmp_path / "new" / "m.om", "--metrics")
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_refuses_a_folder_as_file_and_a_file_as_folder(tmp_path):
    with pytest.raises(ScenarioError, match=r"--metrics = .*: a folder; "):
        check_writable(tmp_path, "--metrics")
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ScenarioError, match="is not a folder") as e:
        check_writable(f / "logs", "--maillog", folder=True)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_refuses_an_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ScenarioError, match="not writable"):
            check_writable(ro / "x.om", "--metrics")
    finally:
        ro.chmod(0o755)


def test_refuses_under_proc():
    # /proc is not writable even for root
    with pytest.raises(ScenarioError):
        check_writable("/proc/relaysim/maillog", "--maillog", folder=True)
