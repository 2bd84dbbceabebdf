#!/usr/bin/env bash
# Vendors the uPlot chart library (the dashboard's only third-party front-end code) into the spindle
# package: fetches the npm tarball once with `npm pack`, checks the registry's integrity hash, copies the
# ES module build, its CSS and its licence, and records version + hashes in VENDORED.json (which
# tests/dashboard/test_vendored_assets.py checks). Needs npm only when refreshing; `pip install` never does.
# Usage: scripts/vendor-uplot.sh [VERSION]   (default: the version in VENDORED.json)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=runtime/spindle/_head/dashboard/static/vendor/uplot
version=${1:-$(python3 -c "import json;print(json.load(open('$dest/VENDORED.json'))['version'])")}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "==> npm pack uplot@$version"
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null)
tgz=$tmp/uplot-$version.tgz
integrity=$(npm view "uplot@$version" dist.integrity)
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "integrity mismatch for uplot@$version: registry says $integrity, tarball is $got" >&2
  exit 1
fi
tar xzf "$tgz" -C "$tmp"
cp "$tmp/package/dist/uPlot.esm.js" "$tmp/package/dist/uPlot.min.css" "$tmp/package/LICENSE" "$dest/"
python3 - "$dest" "$version" "$integrity" <<'PY'
import hashlib, json, sys
dest, version, integrity = sys.argv[1:]
files = ["uPlot.esm.js", "uPlot.min.css", "LICENSE"]
json.dump({"name": "uplot", "version": version, "license": "MIT",
           "tarball": f"https://registry.npmjs.org/uplot/-/uplot-{version}.tgz", "integrity": integrity,
           "files_from_tarball": {"uPlot.esm.js": "package/dist/uPlot.esm.js", "uPlot.min.css": "package/dist/uPlot.min.css",
                                  "LICENSE": "package/LICENSE"},
           "sha256": {f: hashlib.sha256(open(f"{dest}/{f}", "rb").read()).hexdigest() for f in files},
           "refresh": "scripts/vendor-uplot.sh VERSION"}, open(f"{dest}/VENDORED.json", "w"), indent=2)
PY
echo "==> vendored uplot@$version into $dest"
