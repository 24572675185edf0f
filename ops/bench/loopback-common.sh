# Shared by loopback-compare.sh and loopback-cost.sh (sourced, not run): a scratch
# directory, background processes that are stopped on exit, and an nginx on 127.0.0.1
# serving a 1 KiB file for wrk.
work=$(mktemp -d)
chmod 755 "$work" # nginx workers (www-data) must read www/1k.bin, or every answer is a 403
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# start_nginx PORT: serves $work/www/1k.bin on 127.0.0.1:PORT.
start_nginx() {
  mkdir -p "$work/www" && head -c 1024 /dev/urandom > "$work/www/1k.bin"
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1 backlog=4096; root $work/www; } }
CONF
  nginx -c "$work/nginx.conf"
}

# start_haproxy PORT UPSTREAM_PORT: HAProxy in mode tcp on 127.0.0.1:PORT, its pid appended to pids.
start_haproxy() {
  cat > "$work/haproxy.cfg" <<CONF
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$1
  default_backend b
backend b
  server s 127.0.0.1:$2
CONF
  haproxy -f "$work/haproxy.cfg" & pids+=($!)
}

# process_switches PID: context switches (voluntary and not) summed over the process's live threads.
process_switches() { local s=0 t
  for t in /proc/$1/task/*; do
    s=$((s + $(awk '/ctxt_switches/{n+=$2} END{print n+0}' "$t/status" 2>/dev/null || echo 0)))
  done; echo $s; }
