"""scripts/lib/apt.sh, the install-if-missing helper of scripts/deps.d/*.sh, run by bash
against stand-in `dpkg-query` / `apt-get` executables that record what they are asked."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fake_apt(tmp_path):
    """A PATH whose dpkg-query reports the packages listed in `installed`, and whose
    apt-get logs its arguments and, on install, creates the commands in `provides`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "installed").write_text("")
    (tmp_path / "provides").write_text("")
    (bin_dir / "dpkg-query").write_text(
        "#!/bin/bash\npkg=${@: -1}\n"
        f"grep -qx \"$pkg\" {tmp_path}/installed && echo 'install ok installed'\n")
    (bin_dir / "apt-get").write_text(
        f"#!/bin/bash\necho \"$*\" >> {tmp_path}/apt.log\n"
        "if [ \"$1\" = install ]; then\n"
        f"  for c in $(cat {tmp_path}/provides); do printf '#!/bin/sh\\n' > {bin_dir}/$c; "
        f"chmod +x {bin_dir}/$c; done\nfi\n")
    for tool in ("dpkg-query", "apt-get"):
        (bin_dir / tool).chmod(0o755)

    def run(packages, commands):
        script = (f"set -euo pipefail; source {ROOT}/scripts/lib/apt.sh; "
                  f"apt_ensure demo.sh '{packages}' '{commands}'")
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
        log = tmp_path / "apt.log"
        return result, log.read_text().splitlines() if log.exists() else []

    return tmp_path, run


def test_nothing_missing_is_a_no_op(fake_apt):
    tmp_path, run = fake_apt
    (tmp_path / "installed").write_text("pkg-a\npkg-b\n")
    result, apt_calls = run("pkg-a pkg-b", "bash")
    assert result.returncode == 0 and apt_calls == []
    assert result.stdout == "demo.sh: pkg-a pkg-b already installed\n"


def test_a_missing_package_or_command_installs_all(fake_apt):
    tmp_path, run = fake_apt
    (tmp_path / "installed").write_text("pkg-a\n")
    (tmp_path / "provides").write_text("tool-b\n")
    result, apt_calls = run("pkg-a pkg-b", "tool-b")
    assert result.returncode == 0, result.stderr
    assert apt_calls == ["update -q", "install -y -q --no-install-recommends pkg-a pkg-b"]
    assert result.stdout.endswith("demo.sh: installed pkg-a pkg-b\n")


def test_a_command_still_missing_after_install_fails(fake_apt):
    tmp_path, run = fake_apt
    result, apt_calls = run("pkg-a", "tool-never-provided")
    assert result.returncode == 1 and len(apt_calls) == 2
    assert result.stderr == "demo.sh: tool-never-provided still missing after install\n"


def test_install_rejects_an_unknown_dependency_set_before_installing_anything():
    result = subprocess.run(["bash", f"{ROOT}/scripts/install.sh", "no_such_set"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("install.sh: no scripts/deps.d/no_such_set.sh or "
                             "scripts/optional.d/no_such_set.sh\n")



def test_the_main_job_installs_only_what_it_needs():
    """main.sh names its dependency sets, each of which exists; test.sh installs them all."""
    main = open(f"{ROOT}/scripts/main.sh").read()
    line = next(l for l in main.splitlines() if l.startswith("bash scripts/install.sh"))
    names = line.split()[2:]
    assert names and set(names) < {f[:-3] for f in os.listdir(f"{ROOT}/scripts/deps.d")}
    assert "android" not in names and "native" not in names
    assert "bash scripts/install.sh\n" in open(f"{ROOT}/scripts/test.sh").read()
