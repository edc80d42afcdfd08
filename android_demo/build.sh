#!/usr/bin/env bash
# Builds the signed demo APK offline, without Gradle: android_demo/build/xnor-demo.apk
#
#   android_demo/build.sh [MODEL]      MODEL: .tflite or Keras model (default: $XNOR_DEMO_MODEL,
#                                      else the trained default model, else an untrained one)
#
# Steps: system tools (scripts/deps.d/android.sh), android.jar (API 23) and dx from Debian
# bullseye via a separate apt configuration under build/cache (mirror taken from this
# machine's apt sources), the model assets (prepare_model.py), javac, dx, aapt2,
# the JNI library (jni/build_lib.sh: clang + lld, no NDK), zip, align_apk.py (16 KB for the
# library), apksigner with a generated debug key. The host-JVM twin of the library goes to
# build/host-lib/ (x86-64). Everything goes to android_demo/build/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build="$here/build"
cache="$build/cache"
model=${1:-${XNOR_DEMO_MODEL:-}}
python=${PYTHON:-$root/.venv/bin/python}
log() { echo "build.sh: $*"; }
die() { echo "build.sh: error: $*" >&2; exit 2; }

[ $# -le 1 ] || die "usage: android_demo/build.sh [MODEL]"
[ -x "$python" ] || die "no Python at $python (run scripts/install.sh or set PYTHON)"
mkdir -p "$build" "$cache"

# 1. System tools (bookworm): javac, keytool, aapt2, zipalign, apksigner, dexdump, zip,
#    clang, lld.
missing=""
for cmd in javac java keytool aapt2 zipalign apksigner dexdump zip clang++ ld.lld; do
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing system tools (missing:$missing)"
    bash "$root/scripts/deps.d/android.sh"
  else
    die "missing tools:$missing (run scripts/deps.d/android.sh as root)"
  fi
fi

# 2. android.jar (API 23) and dx from Debian bullseye, with apt confined to $cache/apt.
sdk="$cache/bullseye/root"
android_jar="$sdk/usr/share/java/com.android.android-23.jar"
dx_jar="$sdk/usr/share/java/com.android.dx.jar"
if [ ! -f "$android_jar" ] || [ ! -f "$dx_jar" ]; then
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc/sources.list.d" \
           "$apt_dir/etc/preferences.d" "$apt_dir/debs"
  # The Debian mirror of this machine's own apt sources (the entry of the release itself,
  # not -security/-updates), and the keyring it is signed with.
  read -r mirror keyring < <("$python" - <<'PY'
import glob, os, re, sys
codename = ""
for line in open("/etc/os-release"):
    if line.startswith("VERSION_CODENAME="):
        codename = line.split("=", 1)[1].strip().strip('"')
entries = []  # (uri, suites, components, signed_by)
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    if not os.path.isfile(path):
        continue
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        m = re.match(r"deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)", line)
        if m:
            opts = m.group(1) or ""
            key = re.search(r"signed-by=(\S+?)\]?(\s|$)", opts)
            entries.append((m.group(2), [m.group(3)], m.group(4).split(),
                            key.group(1).rstrip("]") if key else ""))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in open(path).read().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append((uri, fields.get("suites", "").split(),
                            fields.get("components", "").split(), fields.get("signed-by", "")))
for uri, suites, components, key in entries:
    if codename in suites and "main" in components and uri.startswith(("http://", "https://")):
        print(uri.rstrip("/"), key or "-")
        sys.exit(0)
sys.exit("no Debian '%s ... main' entry in /etc/apt/sources.list(.d)" % codename)
PY
  ) || die "cannot derive a Debian mirror from this machine's apt sources"
  [ -n "${mirror:-}" ] || die "cannot derive a Debian mirror from this machine's apt sources"
  if [ "$keyring" = "-" ] || [ ! -f "$keyring" ]; then
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  fi
  [ -f "$keyring" ] || die "no Debian archive keyring ($keyring); install debian-archive-keyring"
  echo "deb [signed-by=$keyring] $mirror bullseye main" > "$apt_dir/etc/sources.list"
  : > "$apt_dir/status"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/etc/sources.list"
            -o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
            -o "Dir::Etc::Preferences=$apt_dir/etc/preferences"
            -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
            -o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives"
            -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1" -q)
  log "fetching android.jar (API 23) and dx from $mirror bullseye main (own apt config in $apt_dir)"
  apt-get "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 \
    || { cat "$apt_dir/update.log" >&2; die "apt-get update (bullseye lists) failed"; }
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download \
      android-sdk-platform-23 libandroid-23-java dalvik-exchange >"$apt_dir/download.log" 2>&1) \
    || { cat "$apt_dir/download.log" >&2; die "apt-get download failed"; }
  rm -rf "$sdk.tmp" && mkdir -p "$sdk.tmp"
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$sdk.tmp"
  done
  rm -rf "$sdk" && mv "$sdk.tmp" "$sdk"
  [ -f "$android_jar" ] && [ -f "$dx_jar" ] || die "android.jar or dx.jar missing from the bullseye packages"
fi

# 3. Model assets.
assets="$build/assets"
rm -rf "$assets" && mkdir -p "$assets"
if [ -n "$model" ]; then
  "$python" "$here/prepare_model.py" --out_dir "$assets" --model "$model" || die "model preparation failed"
else
  "$python" "$here/prepare_model.py" --out_dir "$assets" || die "model preparation failed"
fi

# 4. Compile (Java 8 bytecode against API 23; no lambdas: dx and javac -source 8 with this
#    android.jar do not handle them), then dex.
classes="$build/classes"
rm -rf "$classes" && mkdir -p "$classes"
mapfile -t sources < <(find "$here/interpreter/src" "$here/app/src" -name '*.java' | sort)
javac -nowarn -source 8 -target 8 -bootclasspath "$android_jar" -encoding UTF-8 \
      -d "$classes" "${sources[@]}" 2>&1 | grep -v -E '^warning: \[options\]|^1 warning$' || true
[ -f "$classes/xnor/demo/MainActivity.class" ] || die "javac failed"
rm -f "$build/classes.dex"
java -cp "$dx_jar" com.android.dx.command.Main --dex --min-sdk-version=21 \
     --output="$build/classes.dex" "$classes" || die "dx failed"
# The interpreter alone, for the host JVM (tests, benchmarks).
host="$build/host-classes"
rm -rf "$host" && mkdir -p "$host"
javac -nowarn --release 8 -encoding UTF-8 -d "$host" $(find "$here/interpreter/src" -name '*.java') \
  2>&1 | grep -v -E '^warning: \[options\]|^1 warning$' || true
(cd "$host" && jar cf "$build/xnor-tflite.jar" .)

# 5. Resources, manifest and assets (model.tflite stored uncompressed), then the dex.
rm -f "$build/res.zip" "$build/unsigned.apk" "$build/aligned.apk"
aapt2 compile --dir "$here/app/res" -o "$build/res.zip"
aapt2 link -o "$build/unsigned.apk" -I "$android_jar" --manifest "$here/app/AndroidManifest.xml" \
      -A "$assets" -0 .tflite --min-sdk-version 21 --target-sdk-version 23 \
      --version-code 1 --version-name 0.1.0 "$build/res.zip" || die "aapt2 link failed"
(cd "$build" && zip -q -X unsigned.apk classes.dex)
# The JNI library (native/'s kernels), stored uncompressed; its host twin for the JVM tests.
rm -rf "$build/lib" "$build/host-lib"
bash "$here/jni/build_lib.sh" arm64-v8a "$build/lib/arm64-v8a/libxnor_kernels.so" \
  || die "building libxnor_kernels.so (arm64-v8a) failed"
bash "$here/jni/build_lib.sh" x86_64 "$build/host-lib/libxnor_kernels.so" \
  || die "building libxnor_kernels.so (x86_64) failed"
(cd "$build" && zip -q -X -0 unsigned.apk lib/arm64-v8a/libxnor_kernels.so)
"$python" "$here/align_apk.py" "$build/unsigned.apk" "$build/aligned.apk" || die "aligning failed"

# 6. Sign with a generated debug key.
keystore="$cache/debug.keystore"
if [ ! -f "$keystore" ]; then
  keytool -genkeypair -keystore "$keystore" -storepass android -keypass android \
          -alias androiddebugkey -keyalg RSA -keysize 2048 -validity 10000 \
          -dname "CN=Android Debug,O=Android,C=US" >/dev/null 2>&1 || die "keytool failed"
fi
apk="$build/xnor-demo.apk"
apksigner sign --ks "$keystore" --ks-pass pass:android --key-pass pass:android \
          --ks-key-alias androiddebugkey --out "$apk.tmp" "$build/aligned.apk" || die "apksigner failed"
apksigner verify "$apk.tmp" || die "apksigner verify failed"
"$python" "$here/align_apk.py" --check "$apk.tmp" || die "signing moved an entry off its alignment"
mv -f "$apk.tmp" "$apk"
rm -f "$apk.tmp.idsig"
log "wrote $apk ($(stat -c %s "$apk") bytes)"
