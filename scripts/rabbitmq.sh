#!/usr/bin/env bash
# Starts or stops a private RabbitMQ node: loopback only, its own node name and ports, all its files
# (the Erlang crash dump included) under one folder. `make run` and the test suite each start their
# own, so they never collide; two `make run`s with different RABBITMQ_PORTs neither.
#   rabbitmq.sh start DIR PORT [NODENAME]   (returns once the AMQP port accepts connections)
#   rabbitmq.sh join DIR SEED_NODENAME      (makes the running node in DIR a member of SEED's cluster)
#   rabbitmq.sh stop DIR
#   rabbitmq.sh kill DIR                    (SIGKILL, as a crashed machine: the fault tests)
# Nodes of one cluster must share their Erlang cookie: RABBITMQ_CLUSTER_COOKIE, when set, is written as the
# node's cookie before it starts (devtools.system.Broker gives every node of a cluster the same one).
# The node name defaults to orgplatform-PORT: two nodes on one machine need different names (a second
# node under the same name fails to start and leaves only an Erlang crash dump behind).
# Debian's /usr/sbin/rabbitmq-server wrapper re-runs the node as the `rabbitmq` user, which cannot
# write to a project folder; we call the real script under /usr/lib/rabbitmq/bin as ourselves instead.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data folder}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
pidfile=$dir/rabbitmq.pid

is_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "$cmd" in
start)
  port=${3:?port}; node=${4:-orgplatform-$port}
  if is_running; then echo "rabbitmq: already running (pid $(cat "$pidfile"))"; exit 0; fi
  # The Erlang distribution port is the AMQP port + 20000, so it must stay a valid port too.
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 45535 ]; then
    echo "rabbitmq: RABBITMQ_PORT must be a number from 1 to 45535 (the node also listens on it + 20000), not '$port'" >&2
    exit 1
  fi
  dist_port=$((port + 20000))
  # Someone else on either port would take our traffic or make the node crash at start.
  for p in "$port" "$dist_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      what=$([ "$p" = "$port" ] && echo "AMQP port" || echo "distribution port (RABBITMQ_PORT + 20000)")
      echo "rabbitmq: $what $p is already in use by another program; choose another RABBITMQ_PORT (or set AMQP_URI)" >&2
      exit 1
    fi
  done
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  if [ -n "${RABBITMQ_CLUSTER_COOKIE:-}" ]; then
    rm -f "$dir/home/.erlang.cookie"
    (umask 077; printf '%s' "$RABBITMQ_CLUSTER_COOKIE" > "$dir/home/.erlang.cookie")
    chmod 400 "$dir/home/.erlang.cookie"
  fi
  echo "$node@localhost" > "$dir/nodename"
  echo '[].' > "$dir/enabled_plugins"
  cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
loopback_users = none
disk_free_limit.absolute = 50MB
# A cluster: a node cut off from the majority pauses rather than serving a split copy; quorum queues' leaders
# are spread over the nodes (not all on the one the services happened to connect to first).
cluster_partition_handling = pause_minority
queue_leader_locator = balanced
CONF
  # HOME holds the Erlang cookie; the distribution port is derived from the AMQP port (+20000). The node
  # keeps the machine's real clock (-u LD_PRELOAD): under scripts/test_clock_ahead.sh's libfaketime the
  # Erlang VM aborts on its faked monotonic clock, and nothing the tests check depends on the broker's time.
  env -u LD_PRELOAD HOME="$dir/home" \
      RABBITMQ_NODENAME="$node@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" \
      RABBITMQ_DIST_PORT="$dist_port" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
      ERL_CRASH_DUMP="$dir/log/erl_crash.dump" \
      RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/beam.pid" \
      RABBITMQ_LOGS="$dir/log/rabbit.log" \
      setsid bash -c 'cd "$1" && exec /usr/lib/rabbitmq/bin/rabbitmq-server' _ "$dir" >"$dir/log/console.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 240); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "rabbitmq: node $node@localhost listening on 127.0.0.1:$port (data in $dir)"; exit 0
    fi
    is_running || { echo "rabbitmq: failed to start, see $dir/log" >&2; tail -n 30 "$dir/log/console.log" >&2; exit 1; }
    sleep 0.25
  done
  echo "rabbitmq: not listening after 60 s, see $dir/log" >&2; exit 1 ;;
join)
  seed=${3:?seed node name}; node=$(cat "$dir/nodename")
  ctl() { env -u LD_PRELOAD HOME="$dir/home" /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$node" "$@"; }
  # A node that is a member already (a cluster started again) is left alone: joining stops its app.
  if ctl cluster_status --formatter json | grep -q "\"$seed\""; then echo "rabbitmq: $node is in $seed's cluster"; exit 0; fi
  ctl stop_app && ctl join_cluster "$seed" && ctl start_app
  echo "rabbitmq: $node joined $seed's cluster" ;;
kill)
  if is_running; then
    pid=$(cat "$pidfile")
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$pidfile"; echo "rabbitmq: killed" ;;
stop)
  if is_running; then
    pid=$(cat "$pidfile")
    # The script runs under setsid: signalling its process group stops the beam VM too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"; echo "rabbitmq: stopped" ;;
*) echo "usage: $0 start DIR PORT [NODENAME] | join DIR SEED_NODENAME | stop DIR | kill DIR" >&2; exit 2 ;;
esac
