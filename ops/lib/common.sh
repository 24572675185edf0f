# Shell functions shared by ops/lab/lab.sh and ops/cluster/cluster.sh (sourced, not run). Messages start with the
# sourcing script's name, as its own messages do.

# usage: prints the sourcing script's header comment (line 2 up to `set -euo ...`).
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# need_tools COMMAND:PACKAGE...: installs with apt-get the package of every command that is
# missing, updating the package lists only when the first install fails; exits 1 if it cannot.
need_tools() {
  local missing=() tool
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "${0##*/}: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null; } \
      || { echo "${0##*/}: could not install ${missing[*]}" >&2; exit 1; }
  fi
}
