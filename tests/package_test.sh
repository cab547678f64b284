#!/bin/sh
# The Debian package, as a user gets it: `cpack -G DEB` from this build tree into a temp dir, its
# Depends (dpkg-shlibdeps: the Debian runtime library packages), its files, then extracted into a
# scratch root and run from there with a clean environment, so nothing of the source or build
# tree is used: --version, api, lint, a dry-run of a runbook that requires an installed stdlib
# module, and no test hook (RUNBOOK_CRASH_AT) in what is shipped.
# tests/package_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
fail() { echo "package_test: $*" >&2; exit 1; }
for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (scripts/install-deps.sh installs dpkg-dev)"
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$(ls "$tmp"/out/*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { cat "$tmp/cpack.log" >&2; fail "cpack made no .deb"; }
[ "$(dpkg-deb -f "$deb" Package)" = runbook ] || fail "package name is $(dpkg-deb -f "$deb" Package)"
version=$(sed -n 's/^project(runbook VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "version $(dpkg-deb -f "$deb" Version), not $version"
[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] || fail "no Maintainer"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
# The runtime packages of the libraries it links (Debian 12's names).
for p in libc6 libstdc++6 liblua5.4-0 libsqlite3-0 libcurl4 libgit2-1.5 libpq5 libhiredis0.14 libre2-9 libssl3 zlib1g; do
  echo "$depends" | tr ',' '\n' | sed 's/^ *//' | grep -q "^$p\( \|$\)" || fail "Depends does not name $p: $depends"
done
case "$depends" in *-dev*) fail "Depends names a -dev package: $depends" ;; esac

dpkg-deb -c "$deb" >"$tmp/contents"
for f in ./usr/bin/runbook ./usr/share/man/man1/runbook.1 ./usr/share/bash-completion/completions/runbook \
         ./usr/share/zsh/vendor-completions/_runbook ./usr/share/fish/vendor_completions.d/runbook.fish \
         ./usr/share/runbook/stdlib/prelude.lua ./usr/share/runbook/stdlib/notice.lua \
         ./usr/share/runbook/stdlib/runbook/test.lua ./usr/share/runbook/lint/analyse.lua; do
  grep -q " $f\$" "$tmp/contents" || { cat "$tmp/contents" >&2; fail "$f is not in the package"; }
done

root="$tmp/root"
mkdir -p "$root" "$tmp/home" "$tmp/work"
dpkg-deb -x "$deb" "$root"
rb="$root/usr/bin/runbook"
# A clean environment: no RUNBOOK_*, no source tree on any path; HOME is a scratch one.
run() { env -i PATH=/usr/bin:/bin HOME="$tmp/home" LANG=C.UTF-8 "$@"; }

out=$(cd "$tmp/work" && run "$rb" --version) || fail "runbook --version failed"
echo "$out"
echo "$out" | head -n 1 | grep -Eq "^runbook $version \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\$" ||
  fail "--version says: $out"
(cd "$tmp/work" && run "$rb" api) >"$tmp/api.txt" || fail "runbook api failed"
grep -q "service.start" "$tmp/api.txt" || fail "runbook api lists no service.start"
# The packaged man page and completions are the ones this runbook generates.
[ "$(cd "$tmp/work" && run "$rb" man)" = "$(cat "$root/usr/share/man/man1/runbook.1")" ] || fail "runbook.1 differs from runbook man"
[ "$(cd "$tmp/work" && run "$rb" completion bash)" = "$(cat "$root/usr/share/bash-completion/completions/runbook")" ] ||
  fail "the bash completion differs from runbook completion bash"

# The installed stdlib, not the source tree's: a module only the scratch root has is found.
cat >"$root/usr/share/runbook/stdlib/package_marker.lua" <<'EOF'
return { where = "scratch root" }
EOF
cat >"$tmp/work/book.lua" <<'EOF'
local notice = require "notice"
local marker = require "package_marker"
runbook { name = "packaged", version = "1.0.0", params = { dir = { type = "path", required = true } } }
step("write", function(p)
  assert(type(notice.start) == "function", "notice.start missing")
  log.info("stdlib from the " .. marker.where)
  fs.write{ path = p.dir .. "/out.txt", content = "hello\n" }
end)
EOF
out=$(cd "$tmp/work" && run "$rb" exec --dry-run --offline book.lua -p "dir=$tmp/work" --journal "$tmp/j.db" 2>&1) ||
  { echo "$out" >&2; fail "the dry-run of a runbook requiring the installed stdlib failed"; }
echo "$out" | grep -q "stdlib from the scratch root" || { echo "$out" >&2; fail "the dry-run did not log"; }
[ ! -e "$tmp/work/out.txt" ] || fail "the dry-run wrote out.txt"
out=$(cd "$tmp/work" && run "$rb" lint book.lua 2>&1) || { echo "$out" >&2; fail "runbook lint from the package failed"; }

# No test hook in what is shipped: RUNBOOK_CRASH_AT (SIGKILL at an effect) does nothing there,
# while the build tree's runbook, which the tests run, has it.
out=$(cd "$tmp/work" && run RUNBOOK_CRASH_AT=before:1 "$rb" exec book.lua -p "dir=$tmp/work" --journal "$tmp/j.db" 2>&1) ||
  { echo "$out" >&2; fail "the packaged runbook honoured RUNBOOK_CRASH_AT (or the live run failed)"; }
[ "$(cat "$tmp/work/out.txt")" = hello ] || fail "the live run did not write out.txt"
rm -f "$tmp/work/out.txt"
set +e
(cd "$tmp/work" && run RUNBOOK_CRASH_AT=before:1 RUNBOOK_STDLIB="$root/usr/share/runbook/stdlib" \
  "$build/runbook" exec book.lua -p "dir=$tmp/work" --journal "$tmp/j2.db" >/dev/null 2>&1)
rc=$?
set -e
[ "$rc" -eq 137 ] || fail "the build tree's runbook exited $rc with RUNBOOK_CRASH_AT=before:1, not 137 (SIGKILL)"
echo "package_test: ok ($deb)"
