# Shell helpers the setup scripts share (sourced, not run): progress on long steps, failing
# with a log's tail, installing Debian packages.
say() { if [ -t 2 ]; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi; }
# heartbeat LOG: every few seconds, that the step still runs and its log's last line
heartbeat() {
  local log="$1" every="${BACKBONE_PROGRESS_S:-15}" started=$SECONDS nap last
  [[ "$every" =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$every" != 0 ] || every=15
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM  # no stray sleep holding stderr open
  while :; do
    sleep "$every" & nap=$!
    wait "$nap"
    last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-160)
    printf '    ... still running after %d s%s\n' "$((SECONDS - started))" "${last:+: $last}" >&2
  done
}
# logged LOG CMD...: run CMD with its output in LOG; off a terminal, with a heartbeat
logged() {
  local log="$1" rc=0 beat=""; shift
  if [ ! -t 2 ]; then heartbeat "$log" & beat=$!; fi
  "$@" >"$log" 2>&1 || rc=$?
  if [ -n "$beat" ]; then kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true; fi
  return "$rc"
}
# failed LOG WHAT: the log's tail and where the rest is, then stop
failed() { tail -40 "$1" >&2; echo "$2 failed; full log in $1" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# apt_install WHY PKG...: install those of the Debian packages that are not installed yet
apt_install() {
  local why="$1" pkg missing=(); shift
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${why}: ${missing[*]}"
  local log; log=$(mktemp)
  logged "$log" as_root apt-get update || failed "$log" "apt-get update"
  logged "$log" as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    || failed "$log" "apt-get install"
  rm -f "$log"
}
