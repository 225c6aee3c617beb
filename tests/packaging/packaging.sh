#!/usr/bin/env bash
# tests/packaging/packaging.sh — make install, make uninstall, make deb, and the .deb
# installed and purged in a fresh Debian 12 root.
#
# 1. make install DESTDIR=… (PREFIX=/usr and the default /usr/local): the exact file list and
#    modes, the unit's paths filled in, a man page for every installed program, the default
#    options file and the unit agreeing with vtpmmgrd --help's defaults, systemd-analyze
#    verify of the unit; make uninstall leaves no file behind.
# 2. bash completion: commands and subcommands as vtpmctl --help lists them, and the options
#    offered over all commands are exactly those vtpmctl's parsers accept (src/vtpmctl).
# 3. make deb (needs dpkg-buildpackage, debhelper): the package's files, Depends, maintainer
#    scripts; lintian's tags are printed (an error tag fails, others are reported).
# 4. In a Debian 12 root made with debootstrap (cached as a tarball in $PKG_CACHE, default
#    tests/cache/packaging/, with apt's downloads, so a second run needs no network): the
#    package's dependencies, then the .deb; the programs run, the vtpmmgrd user exists, the
#    unit is enabled and verifies, the directories exist; vtpmmgrd is started the way the unit
#    starts it (options from /etc/default/vtpmmgrd, here a swtpm on loopback as host TPM)
#    and provisions a host; purge prints that the store is kept, with its path, and
#    leaves the root as before the package save /var/lib/vtpm and the vtpmmgrd user.
#    If debootstrap cannot reach the Debian mirror: SKIP, and FAIL in CI.
#    PKG_CHROOT=0 skips part 4.
# Usage: make check-package, or [BUILD=build] bash tests/packaging/packaging.sh (not part of
# make test: it takes minutes and does not depend on the build's flags; CI runs it once).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$VTPM_TOP" || exit 1

PKG_CACHE=${PKG_CACHE:-$VTPM_TOP/tests/cache/packaging}
SUITE=bookworm
W=$(t_tmpdir)
MAKE=(make -s --no-print-directory BUILD="$BUILD")

# The package is built from the sources with the distribution's flags, whatever BUILD is: the
# sanitizer run (make asan) would test the same thing again, for minutes.
case ${BUILD##*/} in *asan* | *fuzz*)
  t_skip packaging "sanitizer build: packaging is tested by the plain build's run"
  t_done
  ;;
esac
for b in vtpmd vtpmmgrd vtpmctl; do
  [ -x "$BUILD/$b" ] || { t_fail build "$BUILD/$b is missing (run make)"; t_done; }
done

# ---- 1. make install / uninstall ------------------------------------------------------
# file list with modes, relative to $1
listing() { (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) -printf '%m %p\n' | sort); }

progs_bin="vtpmd vtpmctl"
[ -n "$(ls src/verify/*.c 2>/dev/null)" ] && progs_bin="$progs_bin vtpm-verify"
expect_files() { # PREFIX SYSCONFDIR UNITDIR
  local p=$1 e=$2 u=$3 x m
  for x in $progs_bin; do echo "755 .$p/bin/$x"; done
  echo "755 .$p/sbin/vtpmmgrd"
  echo "644 .$e/vtpm/passthrough.filter"
  echo "644 .$e/default/vtpmmgrd"
  echo "644 .$u/vtpmmgrd.service"
  echo "644 .$p/lib/sysusers.d/vtpm.conf"
  echo "644 .$p/lib/tmpfiles.d/vtpm.conf"
  echo "644 .$p/share/bash-completion/completions/vtpmctl"
  for m in docs/*.[1-8]; do echo "644 .$p/share/man/man${m##*.}/${m##*/}"; done
}

D=$W/destdir
if out=$("${MAKE[@]}" install DESTDIR="$D" PREFIX=/usr SYSCONFDIR=/etc 2>&1); then
  t_pass install-usr
else
  t_fail install-usr "$(echo "$out" | tail -n 1)"
fi
got=$(listing "$D")
want=$(expect_files /usr /etc /usr/lib/systemd/system | sort)
if [ "$got" = "$want" ]; then
  t_pass "install-usr-files ($(echo "$got" | wc -l) files, modes as expected)"
else
  t_fail install-usr-files "differs: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"
fi
# directories: none writable by others
bad=$(find "$D" -type d -perm /022 -printf '%m %P\n' | head -n 3)
[ -z "$bad" ] && t_pass install-dir-modes || t_fail install-dir-modes "group/other-writable: $bad"

U=$D/usr/lib/systemd/system/vtpmmgrd.service
if grep -q '@' "$U"; then
  t_fail unit-substituted "$(grep -m1 '@' "$U")"
elif grep -qx 'ExecStart=/usr/sbin/vtpmmgrd --daemon --pid file=/run/vtpm/vtpmmgrd.pid $VTPMMGRD_OPTS' "$U" &&
  grep -qx 'EnvironmentFile=-/etc/default/vtpmmgrd' "$U"; then
  t_pass unit-substituted
else
  t_fail unit-substituted "ExecStart or EnvironmentFile not as expected: $(grep -E '^(ExecStart|EnvironmentFile)=' "$U" | tr '\n' ' ')"
fi

# every installed program has a man page
missing=()
for x in "$D"/usr/bin/* "$D"/usr/sbin/*; do
  x=${x##*/}
  ls "$D"/usr/share/man/man[1-8]/"$x".[1-8] >/dev/null 2>&1 || missing+=("$x")
done
[ ${#missing[@]} -eq 0 ] && t_pass man-page-per-program || t_fail man-page-per-program "no man page for ${missing[*]}"

# the unit, the default options and tmpfiles name vtpmmgrd's own defaults
help=$("$BUILD/vtpmmgrd" --help)
def() { echo "$help" | grep -o "default $1[^,;) ]*" | head -n 1 | sed "s/^default //"; }
store=$(def /var) isock=$(def /run/vtpm/i) asock=$(def /run/vtpm/a) tcti=$(def device)
probs=()
[ "${store%/*}" = /var/lib/vtpm ] || probs+=("store $store is not under StateDirectory=vtpm")
[ "${isock%/*}" = /run/vtpm ] && [ "${asock%/*}" = /run/vtpm ] || probs+=("sockets $isock $asock not under RuntimeDirectory=vtpm")
grep -qx 'StateDirectory=vtpm' "$U" && grep -qx 'RuntimeDirectory=vtpm' "$U" || probs+=("unit lacks StateDirectory/RuntimeDirectory=vtpm")
for v in "$store" "$isock" "$asock" "$tcti"; do
  grep -q -- "$v" dist/vtpmmgrd.default || probs+=("default file does not name $v")
done
for o in $(grep -o -- '--[a-z][a-z-]*' dist/vtpmmgrd.default | sort -u); do
  echo "$help" | grep -q -- "$o" || probs+=("default file names $o, which vtpmmgrd --help does not list")
done
grep -q "^d /var/lib/vtpm 0700 " dist/vtpm.tmpfiles && grep -qx 'StateDirectoryMode=0700' "$U" ||
  probs+=("tmpfiles and unit disagree on /var/lib/vtpm's mode")
[ ${#probs[@]} -eq 0 ] && t_pass defaults-agree || t_fail defaults-agree "${probs[*]}"

if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart's binary at its path: a copy of the unit pointing into DESTDIR
  mkdir -p "$W/unit"
  sed "s|/usr/sbin/vtpmmgrd|$D/usr/sbin/vtpmmgrd|" "$U" >"$W/unit/vtpmmgrd.service"
  if out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$W/unit/vtpmmgrd.service" 2>&1) &&
    ! echo "$out" | grep -q vtpmmgrd.service; then
    t_pass unit-verify
  else
    t_fail unit-verify "$(echo "$out" | grep -m1 vtpmmgrd.service)"
  fi
  score=$(systemd-analyze security --offline=true "$W/unit/vtpmmgrd.service" 2>/dev/null |
    grep -o 'Overall exposure level for .*' || true)
  [ -n "$score" ] && echo "INFO: $score"
fi

D2=$W/destdir-local
if "${MAKE[@]}" install DESTDIR="$D2" >/dev/null 2>&1; then
  got=$(listing "$D2")
  want=$(expect_files /usr/local /usr/local/etc /usr/local/lib/systemd/system | sort)
  [ "$got" = "$want" ] && grep -qx 'EnvironmentFile=-/usr/local/etc/default/vtpmmgrd' \
    "$D2/usr/local/lib/systemd/system/vtpmmgrd.service" &&
    t_pass install-default-prefix ||
    t_fail install-default-prefix "differs: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"
else
  t_fail install-default-prefix "make install failed"
fi
"${MAKE[@]}" uninstall DESTDIR="$D" PREFIX=/usr SYSCONFDIR=/etc >/dev/null 2>&1
"${MAKE[@]}" uninstall DESTDIR="$D2" >/dev/null 2>&1
left=$( (listing "$D"; listing "$D2") | head -n 3)
[ -z "$left" ] && t_pass uninstall || t_fail uninstall "left: $left"

# ---- 2. bash completion -----------------------------------------------------------------
if [ -f /usr/share/bash-completion/bash_completion ]; then
  # comp LINE: what completing the last word of LINE offers
  cat >"$W/comp.sh" <<'EOF'
source /usr/share/bash-completion/bash_completion
source "$VTPM_TOP/dist/vtpmctl.bash-completion"
comp() {
  COMP_LINE=$1 COMP_POINT=${#1}
  read -ra COMP_WORDS <<<"$1"
  [[ $1 == *' ' ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) COMPREPLY=()
  _vtpmctl
  printf '%s\n' "${COMPREPLY[@]}" | sort
}
# every option offered anywhere: walk commands and subcommands
walk() {
  local w
  comp "$1 --"
  for w in $(comp "$1 "); do
    [[ $w == help ]] && continue
    walk "$1 $w"
  done
}
EOF
  run_comp() { PATH=$BUILD:$PATH bash -c "source $W/comp.sh; $1" 2>&1; }
  cmds=$("$BUILD/vtpmctl" --help | awk '/^Commands:/ { on = 1; next } on && /^[^ ]/ { on = 0 }
    on && /^  [a-z]/ { print $1 }' | sort -u)
  t_eq completion-commands "$(echo "$cmds" | tr '\n' ' ')" "$(run_comp 'comp "vtpmctl "' | tr '\n' ' ')"
  t_eq completion-host "init policy reseal status" "$(run_comp 'comp "vtpmctl --json host "' | tr '\n' ' ' | sed 's/ $//')"
  t_eq completion-policy "add install revoke sign" "$(run_comp 'comp "vtpmctl host policy "' | tr '\n' ' ' | sed 's/ $//')"
  t_eq completion-start-opts "--label --manager-socket --state-dir --vtpmd --wait" \
    "$(run_comp 'comp "vtpmctl start U --"' | grep -v -e admin-socket -e json -e timeout -e help | tr '\n' ' ' | sed 's/ $//')"
  files=$(run_comp 'comp "vtpmctl start U --label a:b:c --state-dir '"$VTPM_TOP"'/doc"')
  t_eq completion-dir-value "$VTPM_TOP/docs" "$files"
  offered=$(run_comp 'walk vtpmctl' | sed 's/^--//' | sort -u)
  offered=$( (echo "$offered"; echo version) | sort -u)
  parsed=$(grep -ho '{"[a-z][a-z0-9-]*", \(true\|false\)' src/vtpmctl/*.c | sed 's/{"\([^"]*\)".*/\1/' | sort -u)
  if [ "$offered" = "$parsed" ]; then
    t_pass "completion-options-match-parsers ($(echo "$parsed" | wc -l) options)"
  else
    t_fail completion-options-match-parsers "offered vs accepted: $(diff <(echo "$parsed") <(echo "$offered") | grep '^[<>]' | tr '\n' ' ')"
  fi
elif [ "${CI:-}" = true ]; then
  t_fail completion "bash-completion is not installed (scripts/deps should have installed it)"
else
  t_skip completion "bash-completion is not installed (run scripts/deps as root)"
fi

# ---- 3. make deb ------------------------------------------------------------------------
need_tool dpkg-buildpackage dh || t_done
start=$SECONDS
# a build directory of its own: make deb empties $(BUILD)/deb
DEB_BUILD=$W/debbuild
if out=$(make -s --no-print-directory BUILD="$DEB_BUILD" deb 2>&1); then
  t_pass "make-deb ($((SECONDS - start)) s)"
else
  t_fail make-deb "$(echo "$out" | grep -v '^ ' | tail -n 2 | tr '\n' ' ')"
  t_done
fi
DEB=$(ls "$DEB_BUILD"/deb/vtpm_*.deb)
ver=$(dpkg-deb -f "$DEB" Version)
t_eq deb-version "$("$BUILD/vtpmd" --version | awk '{print $2}')" "$ver"
files=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in usr/bin/vtpmd usr/bin/vtpmctl usr/sbin/vtpmmgrd lib/systemd/system/vtpmmgrd.service \
  usr/lib/sysusers.d/vtpm.conf usr/lib/tmpfiles.d/vtpm.conf etc/default/vtpmmgrd etc/vtpm/passthrough.filter \
  usr/share/bash-completion/completions/vtpmctl usr/share/man/man8/vtpmmgrd.8.gz; do
  echo "$files" | grep -qxF "./$f" || missing_deb+=("$f")
done
[ -z "${missing_deb[*]:-}" ] && t_pass deb-files || t_fail deb-files "missing ${missing_deb[*]}"
dep=$(dpkg-deb -f "$DEB" Depends)
for d in libtpms0 libtss2-tctildr0 libtss2-tcti-device0 libsqlite3-0 libssl3 systemd-sysusers; do
  echo "$dep" | grep -q "$d" || bad_dep+=("$d")
done
[ -z "${bad_dep[*]:-}" ] && t_pass deb-depends || t_fail deb-depends "Depends lacks ${bad_dep[*]}: $dep"
ctl=$W/ctl
dpkg-deb -e "$DEB" "$ctl"
grep -q systemd-sysusers "$ctl/postinst" && grep -q systemd-tmpfiles "$ctl/postinst" &&
  grep -q "deb-systemd-helper enable 'vtpmmgrd.service'" "$ctl/postinst" &&
  [ "$(grep -n systemd-sysusers "$ctl/postinst" | head -n1 | cut -d: -f1)" -lt \
    "$(grep -n deb-systemd-invoke "$ctl/postinst" | head -n1 | cut -d: -f1)" ] &&
  t_pass deb-postinst-user-before-start || t_fail deb-postinst-user-before-start "postinst lacks the sysusers/tmpfiles/enable snippets or starts before the user exists"
# Build-Depends are scripts/deps build packages
bdeps=$(sed -n '/^Build-Depends:/,/^[A-Z][a-z-]*: /p' debian/control | grep -o 'lib[a-z0-9-]*-dev' | sort -u)
probs=()
for b in $bdeps; do grep -q "build_pkgs=(.* $b[ )]" scripts/deps || probs+=("$b"); done
[ ${#probs[@]} -eq 0 ] && t_pass deb-build-depends-in-deps || t_fail deb-build-depends-in-deps "not in scripts/deps build_pkgs: ${probs[*]}"

if command -v lintian >/dev/null; then
  start=$SECONDS
  lint=$(lintian --tag-display-limit 0 -I --pedantic "$DEB_BUILD"/deb/vtpm_*.changes 2>&1 | grep -E '^[EWIP]: ')
  echo "$lint" | sed -n 's/^/INFO: lintian: /p'
  if echo "$lint" | grep -q '^E: '; then
    t_fail lintian "$(echo "$lint" | grep -c '^E: ') error tag(s): $(echo "$lint" | grep -m1 '^E: ')"
  else
    t_pass "lintian (no error tag; $(echo "$lint" | grep -c '^[WIP]: ') warning/info/pedantic tags, $((SECONDS - start)) s)"
  fi
else
  need_tool lintian || true
fi

# ---- 4. install and purge in a fresh Debian 12 root ---------------------------------------
if [ "${PKG_CHROOT:-1}" = 0 ]; then
  t_skip chroot "PKG_CHROOT=0"
  t_done
fi
[ "$(id -u)" -eq 0 ] || { t_skip chroot "needs root (debootstrap, chroot)"; t_done; }
need_tool debootstrap unshare chroot || t_done

# The mirror the host's apt uses (debootstrap's own default if none is found).
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)}
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \+\(http[^ ]*\/debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
arch=$(dpkg --print-architecture)
TARBALL=$PKG_CACHE/$SUITE-minbase-$arch.tar.gz
mkdir -p "$PKG_CACHE/archives"
start=$SECONDS
if [ ! -s "$TARBALL" ] || [ "${PKG_REFRESH:-0}" = 1 ]; then
  if debootstrap --variant=minbase "$SUITE" "$W/boot" $mirror >"$W/debootstrap.log" 2>&1; then
    chroot "$W/boot" apt-get clean
    tar -C "$W/boot" -czf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$W/boot"
    t_pass "debootstrap ($SUITE minbase, $((SECONDS - start)) s, cached as ${TARBALL#"$VTPM_TOP"/})"
  else
    why="debootstrap $SUITE ${mirror:-(its default mirror)} failed: $(grep -E '^E:|W:' "$W/debootstrap.log" | tail -n 1)"
    rm -rf "$W/boot"
    if [ "${CI:-}" = true ]; then t_fail debootstrap "$why"; else t_skip debootstrap "$why"; fi
    t_done
  fi
fi
R=$W/root
mkdir -p "$R"
start=$SECONDS
tar -C "$R" -xzf "$TARBALL"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
cp "$PKG_CACHE"/archives/*.deb "$R/var/cache/apt/archives/" 2>/dev/null
cp "$DEB" "$R/tmp/"
# in: run a command in the root, /proc mounted in a mount namespace of its own (gone with it)
inroot() { unshare --mount-proc="$R/proc" chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
t_pass "chroot-unpacked ($((SECONDS - start)) s)"

# the dependencies first (from the cache, apt-get update only when its lists are stale), and
# the swtpm TCTI to reach the stand-in host TPM; then a listing of the root without vtpm
start=$SECONDS
deps="$dep, libtss2-tcti-swtpm0"
if ! inroot apt-get satisfy -y -q --no-install-recommends "$deps" >"$W/apt.log" 2>&1; then
  inroot apt-get update -q >>"$W/apt.log" 2>&1
  inroot apt-get satisfy -y -q --no-install-recommends "$deps" >>"$W/apt.log" 2>&1 ||
    { t_fail chroot-deps "$(grep -E '^E:' "$W/apt.log" | tail -n 1)"; t_done; }
fi
cp -n "$R"/var/cache/apt/archives/*.deb "$PKG_CACHE/archives/" 2>/dev/null
t_pass "chroot-deps ($((SECONDS - start)) s)"
# /run/systemd: tmpfs on a running host (systemd-analyze verify below writes there)
snap() { (cd "$R" && find . -xdev \( -path ./proc -o -path ./tmp -o -path ./var/cache -o -path ./var/lib/dpkg \
  -o -path ./var/lib/apt -o -path ./var/log/apt -o -path ./var/lib/systemd/deb-systemd-helper-enabled \
  -o -path ./var/lib/systemd/deb-systemd-helper-masked -o -path ./run/systemd \) -prune -o -printf '%M %U %p\n' |
  grep -v -e ' ./var/log/dpkg.log$' -e ' ./var/log/alternatives.log$' -e ' ./etc/ld.so.cache$' | sort); }
before=$(snap)

start=$SECONDS
if out=$(inroot dpkg -i /tmp/"${DEB##*/}" 2>&1); then
  t_pass "deb-install ($((SECONDS - start)) s)"
else
  t_fail deb-install "$(echo "$out" | tail -n 2 | tr '\n' ' ')"
  t_done
fi
t_check chroot-vtpmd-version inroot vtpmd --version
t_check chroot-vtpmctl-help inroot vtpmctl --help
t_check chroot-vtpmmgrd-version inroot vtpmmgrd --version
t_check chroot-user inroot getent passwd vtpmmgrd
t_eq chroot-user-shell "/nonexistent:/usr/sbin/nologin" "$(inroot getent passwd vtpmmgrd | cut -d: -f6,7)"
t_eq chroot-dirs "drwx------ drwxr-xr-x drwxr-x---" \
  "$(cd "$R" && stat -c %A var/lib/vtpm run/vtpm var/log/vtpm 2>&1 | tr '\n' ' ' | sed 's/ $//')"
[ -L "$R/etc/systemd/system/multi-user.target.wants/vtpmmgrd.service" ] &&
  t_pass chroot-unit-enabled || t_fail chroot-unit-enabled "no multi-user.target.wants link"
if out=$(inroot systemd-analyze verify --man=no /lib/systemd/system/vtpmmgrd.service 2>&1) &&
  ! echo "$out" | grep -q vtpmmgrd.service; then
  t_pass chroot-unit-verify
else
  t_fail chroot-unit-verify "$(echo "$out" | grep -m1 vtpmmgrd)"
fi
t_eq chroot-completion "complete -F _vtpmctl vtpmctl" \
  "$(inroot bash -c '. /usr/share/bash-completion/completions/vtpmctl; complete -p vtpmctl' 2>&1)"

# the manager as its unit starts it, with a swtpm on loopback as the host TPM
if need_tool swtpm && start_host_tpm "$W/hosttpm" "$W/swtpm.log"; then
  sed -i "s|^VTPMMGRD_OPTS=.*|VTPMMGRD_OPTS=\"--tcti $HOST_TCTI --log level=2\"|" "$R/etc/default/vtpmmgrd"
  exec_start=$(sed -n 's/^ExecStart=//p' "$R/lib/systemd/system/vtpmmgrd.service")
  # (its stderr, the log, to a file: the daemon keeps it open)
  if inroot sh -c ". /etc/default/vtpmmgrd; exec $exec_start" >"$W/vtpmmgrd.log" 2>&1; then
    MGR_PID=$(cat "$R/run/vtpm/vtpmmgrd.pid")
    t_pass chroot-manager-started
    t_eq chroot-listener-user "$(inroot getent passwd vtpmmgrd | cut -d: -f3)" \
      "$(ps -o uid= --ppid "$MGR_PID" 2>/dev/null | head -n 1 | tr -d ' ')"
    t_check chroot-host-init inroot vtpmctl host init --pcrs 0,7
    t_check chroot-group inroot vtpmctl group create g --label '*:vm_r:vtpm_t' --any-binary
    t_check chroot-vtpm inroot vtpmctl vtpm create --group g
    kill -TERM "$MGR_PID"
    for _ in $(seq 100); do kill -0 "$MGR_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$MGR_PID" 2>/dev/null && kill -KILL "$MGR_PID"
    [ -s "$R/var/lib/vtpm/vtpmmgrd.db" ] && t_pass chroot-store-made || t_fail chroot-store-made "no store"
  else
    t_fail chroot-manager-started "$(tail -n 1 "$W/vtpmmgrd.log")"
  fi
fi
echo "a log line" >"$R/var/log/vtpm/vtpmd-g1.log"
store_sum=$(cd "$R/var/lib/vtpm" && find . -type f -exec sha256sum {} + 2>/dev/null | sort)

start=$SECONDS
if out=$(inroot dpkg --purge vtpm 2>&1); then
  t_pass "deb-purge ($((SECONDS - start)) s)"
else
  t_fail deb-purge "$(echo "$out" | tail -n 2 | tr '\n' ' ')"
fi
echo "$out" | grep -q 'kept /var/lib/vtpm' && echo "$out" | grep -q '/var/lib/vtpm/vtpmmgrd.db' &&
  t_pass purge-says-store-kept || t_fail purge-says-store-kept "purge did not say: $(echo "$out" | tr '\n' ' ')"
t_eq purge-store-intact "$store_sum" "$(cd "$R/var/lib/vtpm" 2>/dev/null && find . -type f -exec sha256sum {} + 2>/dev/null | sort)"
# what purge left, against the root before the package: /var/lib/vtpm and the user only
after=$(snap)
extra=$(comm -13 <(echo "$before") <(echo "$after") |
  grep -v -e ' \./var/lib/vtpm$' -e ' \./var/lib/vtpm/' -e ' \./etc/\(passwd\|group\|shadow\|gshadow\)-\?$')
gone=$(comm -23 <(echo "$before") <(echo "$after") | grep -v -e ' \./etc/\(passwd\|group\|shadow\|gshadow\)-\?$')
if [ -z "$extra$gone" ]; then
  t_pass "purge-leaves-only-the-store ($(comm -13 <(echo "$before") <(echo "$after") | grep -c ' ./var/lib/vtpm') store paths kept)"
else
  t_fail purge-leaves-only-the-store "left: $(echo "$extra" | head -n 5 | tr '\n' ' ') removed: $(echo "$gone" | head -n 3 | tr '\n' ' ')"
fi
inroot getent passwd vtpmmgrd >/dev/null && echo "INFO: the vtpmmgrd user is kept after purge (Debian's practice for system users)"
t_done
