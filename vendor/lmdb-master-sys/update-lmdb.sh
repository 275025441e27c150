#!/usr/bin/env bash
# Regenerates lmdb/libraries/liblmdb/ from py-lmdb's source distribution, so this crate builds
# the same LMDB the PyPI wheels of py-lmdb run: the 0.9 tree of its `lib/` directory (LMDB
# 0.9.36 for py-lmdb 3.0.0) with py-lmdb's hardening patches for that tree applied, in the
# order of the `v09` entry of `ENGINES` in its setup.py, then cacher's own patches in
# patches/. See VENDOR.md.
#
#   pip download lmdb==3.0.0 --no-binary :all: --no-deps -d /tmp/sdist
#   vendor/lmdb-master-sys/update-lmdb.sh /tmp/sdist/lmdb-3.0.0.tar.gz
set -euo pipefail
sdist=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
want=06dda0723545e14d56ac7dcd6f582d9922c2ed5e16f1c3f8d0e670a96ec2ee65 # lmdb-3.0.0.tar.gz
got=$(sha256sum "$sdist" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "sha256 of $sdist is $got, VENDOR.md records $want: update both deliberately" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$sdist" -C "$work"
top=$(echo "$work"/lmdb-*)
mkdir "$work/tree"
cp "$top"/lib/{mdb.c,midl.c,lmdb.h,midl.h} "$work/tree/"
# setup.py: ENGINES[name='v09'].patch_names, applied with `patch -N -p3` in this order.
for name in env-copy-txn cursor-next-prev-uninitialized cve-2019-16224-validate-db-flags \
  cve-2019-16225-reject-dirty-pages cve-2019-16226-validate-node-del-size \
  cve-2019-16227-guard-xcursor-null cve-2019-16228-validate-psize validate-page-bounds \
  validate-node-read-size validate-subpage-bounds validate-xcursor-nodedsz \
  validate-leaf2-keysize guard-xcursor-null-d3d4 validate-nodedsz-page-split \
  validate-node-shrink-delta validate-overflow-pages validate-nodedsz-cursor-put \
  validate-md-depth validate-md-root win32-sparse-file fix-large-write \
  fix-overflow-page-size-mul validate-md-pad validate-ovpage-free validate-freedb-record; do
  patch --quiet -N -p3 -d "$work/tree" < "$top/lib/py-lmdb/$name.patch"
done
# cacher's own fixes, after py-lmdb's (VENDOR.md says what each fixes and why).
for p in "$here"/patches/*.patch; do
  patch --quiet -N -p1 -d "$work/tree" < "$p"
done
dest="$here/lmdb/libraries/liblmdb"
mkdir -p "$dest"
cp "$work"/tree/{mdb.c,midl.c,lmdb.h,midl.h} "$dest/"
cp "$top/LICENSE" "$dest/LICENSE"
(cd "$dest" && sha256sum mdb.c midl.c lmdb.h midl.h LICENSE)
