"""benchmarks/reproduce.py end to end on a sliver of real Fashion-MNIST, over two seeds."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from tests.conftest import needs_fashion

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "reproduce.py")
TINY = ("--epochs=1", "--train_limit=256", "--eval_limit=256")


def _reproduce(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=900)


def _rows(path):
    lines = path.read_text().splitlines()
    assert lines[3].startswith("|---")
    return lines[0], {line.split(" | ")[0].strip("| "): [c.strip() for c in line.split(" | ")]
                      for line in lines[4:]}


def _top1(directory):
    return json.loads((directory / "metrics.json").read_text())["test"]["top1"]


@needs_fashion
def test_seeds_layout_table_and_resume(tmp_path):
    args = ("--runs=fp,xnor", "--seeds=2", *TINY, f"--output_dir={tmp_path}")
    first = _reproduce(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    trained = [l for l in first.stdout.splitlines() if l.startswith("reproduce: training")]
    assert trained == [f"reproduce: training {r} seed {k}" for k in (0, 1) for r in ("fp", "xnor")]
    for run in ("fp", "xnor"):
        assert sorted(os.listdir(tmp_path / run)) == ["seed0", "seed1"]
        for k in (0, 1):
            directory = tmp_path / run / f"seed{k}"
            assert (directory / "metrics.json").exists() and (directory / "minutes.json").exists()
            assert json.loads((directory / "model.json").read_text())["config"]["seed"] == k

    heading, rows = _rows(tmp_path / "results.md")
    assert heading.startswith("FP = fp ")
    top1 = {r: 100 * np.array([_top1(tmp_path / r / f"seed{k}") for k in (0, 1)])
            for r in ("fp", "xnor")}
    for run, cells in rows.items():
        assert cells[3] == {"fp": "sgd", "xnor": "adam"}[run] and cells[4] == "2"
        mean, std = (float(v) for v in cells[5].split(" ± "))
        assert mean == round(top1[run].mean(), 2) and std == round(top1[run].std(ddof=1), 2)
        assert float(cells[6]) == round(top1[run].mean() - top1["fp"].mean(), 2)
        assert cells[7] == "1"
    assert (tmp_path / "curves.png").stat().st_size > 0
    table = (tmp_path / "results.md").read_text()

    again = _reproduce(*args)  # finished seeds are read back, not retrained
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reproduce: training" not in again.stdout
    assert (tmp_path / "results.md").read_text() == table

    # An unfinished seed (its metrics.json missing) is trained again, and only it.
    (tmp_path / "xnor" / "seed1" / "metrics.json").unlink()
    shutil.rmtree(tmp_path / "xnor" / "seed1" / "checkpoints")
    resumed = _reproduce(*args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [l for l in resumed.stdout.splitlines() if l.startswith("reproduce: training")] == [
        "reproduce: training xnor seed 1"]

    # --seeds=1 trains nothing new and still tables every finished seed on disk.
    fewer = _reproduce("--runs=xnor", "--seeds=1", *TINY, f"--output_dir={tmp_path}")
    assert fewer.returncode == 0, fewer.stderr[-2000:]
    assert "reproduce: training" not in fewer.stdout
    heading, rows = _rows(tmp_path / "results.md")
    assert heading.startswith("FP: neither") and rows["xnor"][4] == "2" and rows["xnor"][6] == "n/a"

    # --archive_dir keeps the small result files only; --notrain rebuilds the table from them.
    kept = tmp_path / "kept"
    archived = _reproduce("--runs=fp,xnor", "--seeds=2", *TINY, f"--output_dir={tmp_path}",
                          f"--archive_dir={kept}")
    assert archived.returncode == 0 and "reproduce: training" not in archived.stdout
    assert sorted(os.listdir(kept / "xnor" / "seed1")) == sorted(
        ["metrics.json", "minutes.json", "model.json", "history.csv"])
    rebuilt = _reproduce("--runs=fp,xnor", "--notrain", f"--output_dir={kept}")
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert (kept / "results.md").read_text() == (tmp_path / "results.md").read_text()
    assert (kept / "curves.png").stat().st_size > 0
    # --notrain with a run that has no finished seed: a one-line error, nothing trained.
    none = _reproduce("--runs=fp,bnn", "--notrain", f"--output_dir={kept}")
    assert none.returncode == 2 and "reproduce: training" not in none.stdout
    assert none.stderr.strip().splitlines()[-1] == (
        f"reproduce: error: no finished seed of ['bnn'] in {kept}")


def test_unknown_run_is_a_one_line_error(tmp_path):
    result = _reproduce("--runs=fp,vgg", f"--output_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("reproduce: error: unknown runs ['vgg']")
    assert not os.listdir(tmp_path)
