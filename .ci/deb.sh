#!/usr/bin/env bash
# The Debian package: build it with cargo-deb ([package.metadata.deb] in Cargo.toml) and
# check what it holds with dpkg-deb: the binary in /usr/bin, /etc/syncto/syncto.ini as a
# conffile, the systemd unit, gzipped man pages, README, copyright and changelog, and no
# dependency but libc. The extracted binary must run and accept the shipped syncto.ini, and
# the unit's sandbox must keep `systemd-analyze security` exposure at 2.0 or below.
# Installs cargo-deb (crates.io) and dpkg-dev/systemd (apt) if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Debian package"
if ! command -v cargo-deb >/dev/null; then
  cargo install cargo-deb --locked
fi
missing=()
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo deb --version

deb=$(cargo deb 2>&1 | tee /dev/stderr | tail -n 1)
[ -f "$deb" ] || { echo "FAIL: cargo deb produced no package"; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

work=$(mktemp -d /tmp/syncto-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# --- contents ---------------------------------------------------------------------------------
dpkg-deb -c "$deb" | tee "$work/contents"
has() { # mode prefix and path
  grep -qE "^$1 .* \./$2\$" "$work/contents" || fail "$2 ($1) is not in the package"
}
has -rwxr-xr-x usr/bin/syncto
has -rw-r--r-- etc/syncto/syncto.ini
has -rw-r--r-- '(usr/)?lib/systemd/system/syncto\.service'
has -rw-r--r-- '(usr/)?lib/systemd/system/syncto@\.service'
has -rw-r--r-- 'usr/share/doc/syncto/examples/Caddyfile'
has -rw-r--r-- 'usr/share/doc/syncto/examples/Containerfile'
has -rw-r--r-- 'usr/share/doc/syncto/credentials\.md'
has -rw-r--r-- 'usr/share/man/man1/syncto\.1\.gz'
has -rw-r--r-- 'usr/share/man/man5/syncto\.ini\.5\.gz'
has -rw-r--r-- 'usr/share/doc/syncto/README\.md'
has -rw-r--r-- 'usr/share/doc/syncto/copyright'
has -rw-r--r-- 'usr/share/doc/syncto/changelog\.Debian\.gz'
has -rw-r--r-- 'usr/share/doc/syncto/examples/nginx-syncto\.conf'

# --- control: name, version, dependencies, conffiles, maintainer scripts ----------------------
dpkg-deb -I "$deb" | tee "$work/info"
grep -q "^ Package: syncto$" "$work/info" || fail "package name"
grep -q "^ Version: $version-1$" "$work/info" || fail "package version is not $version-1"
depends=$(sed -n 's/^ Depends: //p' "$work/info")
[[ "$depends" =~ ^libc6(\ \(\>=\ [0-9.]+\))?$ ]] || fail "dependencies beyond libc: '$depends'"
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/syncto/syncto.ini ] || fail "conffiles"
dpkg-deb -I "$deb" postinst | grep -q "deb-systemd-helper enable syncto.service" ||
  fail "the unit is not enabled on install"

# --- the files themselves -----------------------------------------------------------------------
dpkg-deb -x "$deb" "$work/root"
root="$work/root"
cmp "$root/etc/syncto/syncto.ini" etc/syncto.ini || fail "syncto.ini differs from etc/"
unit="$root/usr/lib/systemd/system/syncto.service"
[ -f "$unit" ] || unit="$root/lib/systemd/system/syncto.service"
cmp "$unit" etc/syncto.service || fail "the unit differs from etc/syncto.service"
for page in man1/syncto.1 man5/syncto.ini.5; do
  gzip -dc "$root/usr/share/man/$page.gz" | cmp - "man/${page#*/}" || fail "$page"
done
gzip -dc "$root/usr/share/doc/syncto/changelog.Debian.gz" | head -n 1 | grep -q "^syncto ($version-1)" ||
  fail "the changelog does not start with syncto ($version-1)"
cmp "$root/usr/share/doc/syncto/copyright" debian/copyright ||
  fail "the copyright file is not debian/copyright (DEP-5)"
[ "$("$root/usr/bin/syncto" --version)" = "syncto $version" ] || fail "syncto --version"
SYNCTO_INI= "$root/usr/bin/syncto" --check-config --config "$root/etc/syncto/syncto.ini" |
  grep -q "configuration OK" || fail "the shipped syncto.ini does not load"

# --- the template unit: the same service, one configuration per instance ---------------------
tmpl="$root/usr/lib/systemd/system/syncto@.service"
[ -f "$tmpl" ] || tmpl="$root/lib/systemd/system/syncto@.service"
cmp "$tmpl" etc/syncto@.service || fail "syncto@.service differs from etc/"
directives() { grep -vE '^(#|$|Description=|ExecStart=|RuntimeDirectory=)' "$1"; }
diff <(directives etc/syncto.service) <(directives etc/syncto@.service) ||
  fail "syncto@.service has other directives than syncto.service"
grep -qx 'ExecStart=/usr/bin/syncto --config /etc/syncto/%i.ini' etc/syncto@.service ||
  fail "syncto@.service does not read /etc/syncto/%i.ini"

# --- the unit's sandbox -----------------------------------------------------------------------
exposure=$(systemd-analyze security --offline=true etc/syncto.service 2>&1 |
  sed -n 's/.*Overall exposure level for syncto.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure: $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure > 2.0"
cp etc/syncto@.service "$work/syncto@check.service"
tmpl_exposure=$(systemd-analyze security --offline=true "$work/syncto@check.service" 2>&1 |
  sed -n 's/.*Overall exposure level for syncto@check.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure of syncto@.service: $tmpl_exposure"
awk -v e="$tmpl_exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "template exposure $tmpl_exposure > 2.0"

echo "package: $deb, $(stat -c %s "$deb") bytes (installed: $(sed -n 's/^ Installed-Size: //p' "$work/info") KiB)"
echo "deb: OK"
