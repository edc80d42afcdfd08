"""benchmarks/reproduce.py end to end on a sliver of real Fashion-MNIST."""

import os
import subprocess
import sys

from tests.conftest import needs_fashion

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "reproduce.py")


def _reproduce(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=900)


@needs_fashion
def test_trains_each_run_once_and_tables_them(tmp_path):
    args = ("--runs=fp,bwn_sgd,bwn", "--epochs=1", "--train_limit=512", "--eval_limit=512",
            f"--output_dir={tmp_path}")
    first = _reproduce(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("reproduce: training") == 3
    table = (tmp_path / "results.md").read_text().splitlines()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table[2:]}
    assert list(rows) == ["fp", "bwn_sgd", "bwn"]
    # the optimizer column comes from what each run actually used (model.json)
    assert [rows[name][3] for name in rows] == ["sgd", "sgd", "adam"]
    assert rows["fp"][5] == "+0.00"
    for name, cells in rows.items():
        assert 0.0 < float(cells[4]) <= 100.0 and cells[6] == "1", name
    assert (tmp_path / "curves.png").stat().st_size > 0

    again = _reproduce(*args)  # finished runs are read back, not retrained
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reproduce: training" not in again.stdout
    assert (tmp_path / "results.md").read_text().splitlines() == table


def test_unknown_run_is_a_one_line_error(tmp_path):
    result = _reproduce("--runs=fp,vgg", f"--output_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("reproduce: error: unknown runs ['vgg']")
    assert not os.listdir(tmp_path)
