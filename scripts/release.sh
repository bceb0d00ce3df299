#!/bin/sh
# release.sh builds the sampan binaries of a release: run it in a clean
# checkout whose HEAD carries the release's annotated tag (vMAJOR.MINOR.PATCH).
#
#   scripts/release.sh OUTDIR [GOOS/GOARCH ...]   (default: linux/amd64 linux/arm64)
#
# Each binary is static (CGO_ENABLED=0), built with -trimpath, and carries
# the tag as its version (the Go toolchain stamps it from the tag; see
# docs/releasing.md). OUTDIR gets sampan-TAG-GOOS-GOARCH files and their
# SHA256SUMS. The binary for this machine, if built, must say the tag in
# `sampan version`.
set -eu

fail() { echo "release: $*" >&2; exit 1; }

[ $# -ge 1 ] || fail "usage: scripts/release.sh OUTDIR [GOOS/GOARCH ...]"
out=$1; shift
[ $# -gt 0 ] || set -- linux/amd64 linux/arm64

cd "$(git rev-parse --show-toplevel)"
tag=$(git describe --exact-match --tags HEAD 2>/dev/null) || fail "HEAD carries no tag: tag the release first (git tag -a vX.Y.Z)"
echo "$tag" | grep -Eq '^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$' || fail "tag $tag is not vMAJOR.MINOR.PATCH"
[ "$(git cat-file -t "$tag")" = tag ] || fail "tag $tag is not annotated (git tag -a)"
[ -z "$(git status --porcelain)" ] || fail "the checkout has uncommitted changes"

mkdir -p "$out"
host="$(go env GOOS)/$(go env GOARCH)"
native=
for target in "$@"; do
	os=${target%/*}; arch=${target#*/}
	bin="sampan-$tag-$os-$arch"
	echo "release: building $bin" >&2
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -buildvcs=true -trimpath -o "$out/$bin" ./cmd/sampan
	[ "$target" = "$host" ] && native="$out/$bin"
done
(cd "$out" && sha256sum sampan-"$tag"-* > SHA256SUMS && cat SHA256SUMS)

if [ -n "$native" ]; then
	got=$("$native" version | head -n 1)
	[ "$got" = "sampan $tag" ] || fail "the binary says \"$got\", not \"sampan $tag\""
fi
