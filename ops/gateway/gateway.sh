#!/usr/bin/env bash
# Interception rules that turn a Linux box running Relay into an L7R-style
# gateway: TCP connections that arrive on the given interfaces, addressed to
# other hosts, are handed to Relay's transparent listener, which relays each to
# its original destination. Everything else (UDP, ICMP, the relay's own
# traffic) is routed as before.
#
# Usage: gateway.sh install|remove|show|dry-run [OPTIONS]
#   --in IFACE           intercept TCP arriving on IFACE; repeatable, at least one
#                        (both sides of the appliance for both directions)
#   --listen PORT        the transparent route's listen port (default 15001)
#   --mode MODE          redirect (default: nat redirect, the relay reads
#                        SO_ORIGINAL_DST; route `interception = redirect`) or
#                        tproxy (route `interception = tproxy`; needed for
#                        `upstream-source = client`); tproxy also adds the
#                        policy routing that delivers marked packets locally
#   --ports LIST         destination ports: all (default) or 80,443,8000-8100
#   --dest CIDR          only these destinations (repeatable; default: any
#                        address that is not the gateway's own)
#   --family F           ipv4, ipv6 or both (default both)
#   --table NAME         nftables table (default relay_gateway; family inet)
#   --mark N             tproxy: firewall mark (default 0x1)
#   --route-table N      tproxy: routing table for marked packets (default 100)
#
#   install   apply the rules (replaces this table's earlier rules; idempotent)
#   remove    delete the table (and tproxy's policy routing); absent is fine
#   show      print what is installed now
#   dry-run   print the nft ruleset and ip commands that install would run;
#             needs neither root nor nft
# Needs root (CAP_NET_ADMIN) and nft, except dry-run. See ops/gateway/README.md.
set -euo pipefail

die() { echo "gateway.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

cmd="${1:-}"
[ -n "$cmd" ] || { usage >&2; exit 2; }
shift || true

IFACES=()
DESTS=()
LISTEN=15001
MODE=redirect
PORTS=all
FAMILY=both
TABLE=relay_gateway
MARK=0x1
RT=100

while [ "$#" -gt 0 ]; do
  case "$1" in
    --in) [ "$#" -ge 2 ] || die "--in needs an interface"; IFACES+=("$2"); shift 2 ;;
    --listen) [ "$#" -ge 2 ] || die "--listen needs a port"; LISTEN=$2; shift 2 ;;
    --mode) [ "$#" -ge 2 ] || die "--mode needs redirect or tproxy"; MODE=$2; shift 2 ;;
    --ports) [ "$#" -ge 2 ] || die "--ports needs a list"; PORTS=$2; shift 2 ;;
    --dest) [ "$#" -ge 2 ] || die "--dest needs a CIDR"; DESTS+=("$2"); shift 2 ;;
    --family) [ "$#" -ge 2 ] || die "--family needs ipv4, ipv6 or both"; FAMILY=$2; shift 2 ;;
    --table) [ "$#" -ge 2 ] || die "--table needs a name"; TABLE=$2; shift 2 ;;
    --mark) [ "$#" -ge 2 ] || die "--mark needs a number"; MARK=$2; shift 2 ;;
    --route-table) [ "$#" -ge 2 ] || die "--route-table needs a number"; RT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done

# ---- validation: every value ends up in a ruleset, so check it first -------
[[ "$TABLE" =~ ^[A-Za-z][A-Za-z0-9_]{0,31}$ ]] || die "--table '$TABLE' must be letters, digits and '_'"
case "$MODE" in redirect|tproxy) ;; *) die "--mode must be redirect or tproxy, got '$MODE'" ;; esac
case "$FAMILY" in ipv4|ipv6|both) ;; *) die "--family must be ipv4, ipv6 or both, got '$FAMILY'" ;; esac
valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_port "$LISTEN" || die "--listen must be a port 1..65535, got '$LISTEN'"
[[ "$MARK" =~ ^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$ ]] && [ "$((MARK))" -ne 0 ] || die "--mark must be a non-zero number, got '$MARK'"
[[ "$RT" =~ ^[0-9]{1,10}$ ]] && [ "$RT" -ge 1 ] && [ "$RT" -le 4294967294 ] && [ "$RT" -ne 253 ] && [ "$RT" -ne 254 ] && [ "$RT" -ne 255 ] \
  || die "--route-table must be a free table number (not 253-255), got '$RT'"
for i in "${IFACES[@]}"; do [[ "$i" =~ ^[A-Za-z0-9_.:@-]{1,15}$ ]] || die "--in '$i' is not an interface name"; done
PORT_SET=""
if [ "$PORTS" != all ]; then
  IFS=, read -r -a parts <<<"$PORTS"
  for p in "${parts[@]}"; do
    if [[ "$p" =~ ^([0-9]+)-([0-9]+)$ ]]; then
      lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[2]}
      valid_port "$lo" && valid_port "$hi" && [ "$lo" -le "$hi" ] \
        || die "--ports: '$p' is not a range a-b of ports 1..65535"
    else
      valid_port "$p" || die "--ports: '$p' is not a port 1..65535"
    fi
  done
  PORT_SET="tcp dport { ${PORTS//,/, } } "
fi
V4=(); V6=()
for d in "${DESTS[@]}"; do
  if [[ "$d" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]]; then V4+=("$d")
  elif [[ "$d" =~ ^[0-9A-Fa-f:]+(/[0-9]{1,3})?$ ]] && [[ "$d" == *:* ]]; then V6+=("$d")
  else die "--dest '$d' is not an IPv4 or IPv6 CIDR"; fi
done
join() { local IFS=,; echo "$*" | sed 's/,/, /g'; }

# ---- the ruleset -----------------------------------------------------------
# One rule per family that the options allow: [nfproto, daddr match, tproxy family].
rule_matches() {
  local want4=1 want6=1
  [ "$FAMILY" = ipv6 ] && want4=0
  [ "$FAMILY" = ipv4 ] && want6=0
  if [ "${#DESTS[@]}" -gt 0 ]; then
    [ "${#V4[@]}" -gt 0 ] || want4=0
    [ "${#V6[@]}" -gt 0 ] || want6=0
  fi
  if [ "$want4" = 1 ]; then
    if [ "${#V4[@]}" -gt 0 ]; then echo "ip|ip daddr { $(join "${V4[@]}") } "; else echo "ip|meta nfproto ipv4 "; fi
  fi
  if [ "$want6" = 1 ]; then
    if [ "${#V6[@]}" -gt 0 ]; then echo "ip6|ip6 daddr { $(join "${V6[@]}") } "; else echo "ip6|meta nfproto ipv6 "; fi
  fi
}

ruleset() {
  local ifset line fam match
  ifset="iifname { $(printf '"%s", ' "${IFACES[@]}" | sed 's/, $//') }"
  # Create-then-delete makes the install atomic and idempotent in one nft transaction:
  # the old table (if any) and the new one are swapped, never both half there.
  echo "table inet $TABLE"
  echo "delete table inet $TABLE"
  echo "table inet $TABLE {"
  if [ "$MODE" = redirect ]; then
    echo "  chain intercept {"
    echo "    type nat hook prerouting priority dstnat; policy accept;"
    while IFS='|' read -r fam match; do
      [ -n "$fam" ] || continue
      # 'fib daddr type != local': connections to the gateway's own addresses (ssh, the
      # management API, replies to the relay's upstream connections) are never intercepted.
      echo "    $ifset meta l4proto tcp ${match}fib daddr type != local ${PORT_SET}redirect to :$LISTEN"
    done < <(rule_matches)
    echo "  }"
  else
    echo "  chain divert {"
    echo "    type filter hook prerouting priority mangle; policy accept;"
    # Packets of connections a transparent socket already owns (the server's replies to an
    # upstream connection made from the client's address) are delivered to the relay.
    echo "    meta l4proto tcp socket transparent 1 meta mark set $MARK accept"
    while IFS='|' read -r fam match; do
      [ -n "$fam" ] || continue
      echo "    $ifset meta l4proto tcp ${match}fib daddr type != local ${PORT_SET}tproxy $fam to :$LISTEN meta mark set $MARK accept"
    done < <(rule_matches)
    echo "  }"
  fi
  echo "}"
}

# tproxy: a marked packet must be routed to the local stack, whatever its destination.
policy_routing() {
  local verb=$1
  if [ "$FAMILY" != ipv6 ]; then
    echo "ip -4 rule $verb fwmark $MARK lookup $RT"
    echo "ip -4 route $([ "$verb" = add ] && echo replace || echo del) local 0.0.0.0/0 dev lo table $RT"
  fi
  if [ "$FAMILY" != ipv4 ]; then
    echo "ip -6 rule $verb fwmark $MARK lookup $RT"
    echo "ip -6 route $([ "$verb" = add ] && echo replace || echo del) local ::/0 dev lo table $RT"
  fi
}

need_root() {
  [ "$(id -u)" = 0 ] || { echo "gateway.sh: $cmd needs root (CAP_NET_ADMIN): sudo $0 $cmd ..." >&2; exit 1; }
  command -v nft >/dev/null 2>&1 || { echo "gateway.sh: nft not found: apt-get install nftables" >&2; exit 1; }
}

table_exists() { nft list table inet "$TABLE" >/dev/null 2>&1; }

rule_present() { # ip -4|-6 rule with our fwmark and table
  ip "$1" rule show 2>/dev/null | grep -Eq "fwmark $(printf '0x%x' "$((MARK))")(/0x[0-9a-f]+)? lookup $RT( |$)"
}

case "$cmd" in
  dry-run)
    [ "${#IFACES[@]}" -gt 0 ] || die "dry-run needs at least one --in IFACE"
    echo "# nft -f - <<'NFT'"
    ruleset
    echo "# NFT"
    if [ "$MODE" = tproxy ]; then policy_routing add; fi
    ;;
  install)
    [ "${#IFACES[@]}" -gt 0 ] || die "install needs at least one --in IFACE"
    need_root
    ruleset | nft -f - || { echo "gateway.sh: nft refused the ruleset (see above); nothing was changed" >&2; exit 1; }
    if [ "$MODE" = tproxy ]; then
      ip link set lo up # the local route below needs it (a fresh network namespace has it down)
      for fam in -4 -6; do
        [ "$fam" = -4 ] && [ "$FAMILY" = ipv6 ] && continue
        [ "$fam" = -6 ] && [ "$FAMILY" = ipv4 ] && continue
        rule_present "$fam" || ip "$fam" rule add fwmark "$MARK" lookup "$RT"
        if [ "$fam" = -4 ]; then ip -4 route replace local 0.0.0.0/0 dev lo table "$RT"
        else ip -6 route replace local ::/0 dev lo table "$RT"; fi
      done
    fi
    echo "gateway: $MODE on ${IFACES[*]} -> :$LISTEN (table inet $TABLE)"
    ;;
  remove)
    need_root
    if table_exists; then nft delete table inet "$TABLE"; fi
    # The policy routing belongs to tproxy installs; remove it whatever --mode says, so
    # `remove` with the defaults undoes any install.
    for fam in -4 -6; do
      while rule_present "$fam"; do ip "$fam" rule del fwmark "$MARK" lookup "$RT" || break; done
      ip "$fam" route flush table "$RT" 2>/dev/null || true
    done
    echo "gateway: removed (table inet $TABLE)"
    ;;
  show)
    need_root
    if table_exists; then nft list table inet "$TABLE"; else echo "gateway: not installed (no table inet $TABLE)"; fi
    for fam in -4 -6; do rule_present "$fam" && echo "policy routing ($fam): $(ip "$fam" rule show | grep "lookup $RT")"; done
    true
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
