# Shared by the bench scripts (sourced, not run): waiting for a port, the app stand-in (an
# nginx answering 200 to POST /ok, its access log counting the POSTs), and the binary under
# test. The caller sets BENCH (its scratch directory) and keeps PIDS for its cleanup.

# waitport PORT: until something listens there (10 s at most).
waitport() {
    for _ in $(seq 1 100); do
        ss -ltn "sport = :$1" | grep -q LISTEN && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

# start_app PORT: nginx on 127.0.0.1:PORT, one worker, POST /ok → 200, bodies up to 200 MB;
# every request is a line of $BENCH/nginx/access.log.
start_app() {
    mkdir -p "$BENCH/nginx/tmp"
    cat > "$BENCH/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH/nginx/nginx.pid;
error_log $BENCH/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log $BENCH/nginx/access.log;
  client_body_temp_path $BENCH/nginx/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$1;
    client_max_body_size 200m;
    client_body_buffer_size 1m;
    location = /ok { return 200 "ok\n"; }
  }
}
CONF
    nginx -c "$BENCH/nginx/nginx.conf" &
    PIDS+=($!)
    waitport "$1"
}

# postern_binary ROOT: $POSTERN when set (an older build to compare), else this tree's
# release build, built first.
postern_binary() {
    if [ -n "${POSTERN:-}" ]; then
        echo "$POSTERN"
        return
    fi
    (cd "$1" && cargo build --release --locked -q) || return 1
    echo "$1/target/release/postern"
}
