# Sourced by the ci/ scripts: starts moto server on a free loopback port, exports its
# endpoint as INTRADAY_TEST_ENDPOINT, and stops it however the script ends.

intraday_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

intraday_start_moto() {
  local port log
  port=$(intraday_free_port)
  log="${TMPDIR:-/tmp}/intraday-moto-$port.log"
  moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  INTRADAY_MOTO_PID=$!
  trap 'kill "$INTRADAY_MOTO_PID" 2>/dev/null; wait "$INTRADAY_MOTO_PID" 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM
  for _ in $(seq 1 150); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      export INTRADAY_TEST_ENDPOINT="http://127.0.0.1:$port"
      echo "ci: moto server $(moto_server --version 2>/dev/null || true) on $INTRADAY_TEST_ENDPOINT (log: $log)" >&2
      return 0
    fi
    if ! kill -0 "$INTRADAY_MOTO_PID" 2>/dev/null; then
      echo "ci: moto server exited at start; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "ci: moto server did not answer on port $port within 30 s" >&2
  exit 1
}
