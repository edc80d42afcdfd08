# Sourced by scripts/deps.d/*.sh: install Debian packages only when something is missing.
#
#   apt_ensure NAME "pkg1 pkg2 ..." "cmd1 cmd2 ..."
#
# A quick no-op when every package is installed and every command is on PATH;
# otherwise `apt-get update` once, install the packages, and fail if a command is still
# missing afterwards. Runs as root.

_apt_all_present() {
  local cmd pkg
  for cmd in $2; do command -v "$cmd" >/dev/null 2>&1 || return 1; done
  for pkg in $1; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || return 1
  done
}

apt_ensure() {
  local name=$1 packages=$2 commands=$3 cmd
  if _apt_all_present "$packages" "$commands"; then
    echo "$name: $packages already installed"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  apt-get install -y -q --no-install-recommends $packages
  for cmd in $commands; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "$name: $cmd still missing after install" >&2; return 1; }
  done
  echo "$name: installed $packages"
}
