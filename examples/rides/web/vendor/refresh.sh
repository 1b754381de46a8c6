#!/bin/sh
# Refreshes the vendored ethers UMD build used by the rides web UI.
# ethers version: 6.17.0 (the version the SDK's ethers interop tests pin)
# Usage: sh examples/rides/web/vendor/refresh.sh [version]
set -eu
version=${1:-6.17.0}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "ethers@$version" >/dev/null && tar xzf "ethers-$version.tgz")
cp "$tmp/package/dist/ethers.umd.min.js" "$here/ethers.umd.min.js"
cp "$tmp/package/LICENSE.md" "$here/ethers.LICENSE.md"
sha256sum "$here/ethers.umd.min.js"
echo "ethers $version vendored"
