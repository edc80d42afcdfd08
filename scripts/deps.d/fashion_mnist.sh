#!/usr/bin/env bash
# Offline Fashion-MNIST for xnor_keras.data: Debian's dataset-fashion-mnist installs the
# gzipped IDX files in /usr/share/datasets/fashion-mnist/. Idempotent: a quick no-op when
# the package is already installed; otherwise apt-get update once, then install. Runs as root.
set -euo pipefail

package=dataset-fashion-mnist
directory=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

installed() {
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || return 1
  for f in "${files[@]}"; do [ -s "$directory/$f" ] || return 1; done
}

if installed; then
  echo "fashion_mnist.sh: $package already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# --reinstall restores the files if the package is registered but its data was deleted.
apt-get install -y -q --no-install-recommends --reinstall "$package"
installed || { echo "fashion_mnist.sh: $directory still incomplete after installing $package" >&2; exit 1; }
echo "fashion_mnist.sh: installed $package ($directory)"
