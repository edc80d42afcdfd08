"""Tests of xnor_keras.io.atomic_write / atomic_open / atomic_savefig on real files."""

import os
import stat

import pytest

from xnor_keras.io import atomic_open, atomic_savefig, atomic_write


def _siblings(path):
    return sorted(os.listdir(os.path.dirname(path)))


def test_text_and_bytes_are_written(tmp_path):
    text, binary = tmp_path / "report.md", tmp_path / "model.tflite"
    atomic_write(text, "# Report\nα = 0.5\n")
    atomic_write(binary, bytes(range(256)))
    assert text.read_text(encoding="utf-8") == "# Report\nα = 0.5\n"
    assert binary.read_bytes() == bytes(range(256))
    assert _siblings(text) == ["model.tflite", "report.md"]  # no temporary file left


def test_replaces_an_existing_file(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old, longer content\n")
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"


def test_the_target_is_untouched_until_the_block_ends(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old\n")
    with atomic_open(path, "w") as stream:
        stream.write("new\n")
        stream.flush()
        assert path.read_text() == "old\n"
        # The content is in a temporary sibling (same directory: same file system).
        temporary, = set(_siblings(path)) - {"report.md"}
        assert (tmp_path / temporary).read_text() == "new\n"
    assert path.read_text() == "new\n" and _siblings(path) == ["report.md"]


def test_an_error_inside_the_block_keeps_the_old_file(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old\n")
    with pytest.raises(KeyError):
        with atomic_open(path, "w") as stream:
            stream.write("half a rep")
            raise KeyError("boom")
    assert path.read_text() == "old\n" and _siblings(path) == ["report.md"]
    with pytest.raises(TypeError):
        with atomic_open(tmp_path / "new.bin", "wb") as stream:
            stream.write("text into a binary file")
    assert _siblings(path) == ["report.md"]  # a new target is not created either


def test_permissions_are_those_of_a_plain_open(tmp_path):
    old_umask = os.umask(0o027)
    try:
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
        atomic_write(tmp_path / "atomic", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "atomic").st_mode) == \
        stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == 0o640


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match="Received: content of type dict"):
        atomic_write(tmp_path / "x.json", {"a": 1})
    with pytest.raises(ValueError, match="Received: mode='a'"):
        with atomic_open(tmp_path / "x", "a"):
            pass
    with pytest.raises(FileNotFoundError, match="directory .*missing does not exist"):
        atomic_write(tmp_path / "missing" / "x", "x")
    assert os.listdir(tmp_path) == []


def test_a_figure_is_saved_in_its_extensions_format(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    atomic_savefig(fig, tmp_path / "curves.png", dpi=20)
    atomic_savefig(fig, tmp_path / "curves.svg")
    plt.close(fig)
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in (tmp_path / "curves.svg").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["curves.png", "curves.svg"]


def test_a_failing_savefig_keeps_the_old_figure(tmp_path):
    class Failing:
        def savefig(self, stream, **options):
            assert options == {"format": "png", "dpi": 7}
            stream.write(b"\x89PNG half")
            raise RuntimeError("renderer crashed")

    path = tmp_path / "curves.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        atomic_savefig(Failing(), path, dpi=7)
    assert path.read_bytes() == b"old" and _siblings(path) == ["curves.png"]
