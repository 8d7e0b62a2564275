#!/usr/bin/env bash
# make demo: a local control plane (etcd + kube-apiserver on loopback), the
# D365 emulator, the operator and the sample orders of config/samples/.
# Prints `kubectl get sos` until every order is Ready, then how to poke it.
# Ctrl-C stops everything. DEMO_EXIT_WHEN_READY=1 stops once Ready (CI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
work="${DEMO_DIR:-$root/target/demo}"
emulator_port="${DEMO_EMULATOR_PORT:-18080}"
operator_port="${DEMO_OPERATOR_PORT:-18081}"
mkdir -p "$work"
rm -f "$work"/*.log "$work/kubeconfig"

echo "demo: building (first run: several minutes)"
assets="$(hack/envtest/build.sh)"
cargo build -q --workspace --bins
export KUBEBUILDER_ASSETS="$assets"
kubectl="$assets/kubectl"
[[ -x "$kubectl" ]] || kubectl="$(command -v kubectl)"

pids=()
cleanup() {
  echo; echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for_line() { # file pattern seconds
  for _ in $(seq 1 $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1" >&2; tail -20 "$1" >&2; return 1
}

target/debug/control-plane "$work/kubeconfig" >"$work/control-plane.log" 2>&1 & pids+=($!)
wait_for_line "$work/control-plane.log" "control plane ready" 120
export KUBECONFIG="$work/kubeconfig"

target/debug/d365-emulator --listen "127.0.0.1:$emulator_port" --generate 10 >"$work/emulator.log" 2>&1 & pids+=($!)
wait_for_line "$work/emulator.log" "listening on" 30

"$kubectl" apply -f crds/ >/dev/null
"$kubectl" wait --for=condition=Established crd/salesorderstatuses.d365.salesops.io crd/d365connections.d365.salesops.io --timeout=30s >/dev/null
"$kubectl" apply -f config/samples/00-namespace.yaml -f config/samples/10-connection.yaml >/dev/null

# The emulator is the demo's Entra too: allow it as an authority host (on
# loopback, which is this machine here; in a pod it would be the pod).
target/debug/sales-order-operator run --http-addr "127.0.0.1:$operator_port" --log-format text \
  --allowed-authority-hosts 127.0.0.1 >"$work/operator.log" 2>&1 & pids+=($!)
"$kubectl" apply -f config/samples/20-orders.yaml >/dev/null

total=$(grep -c '^kind: SalesOrderStatus' config/samples/20-orders.yaml)
for i in $(seq 1 120); do
  ready=$("$kubectl" get sos -n orders -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)
  clear 2>/dev/null || true
  "$kubectl" get sos -n orders
  echo; echo "demo: $ready/$total Ready"
  [[ "$ready" == "$total" ]] && break
  [[ $i == 120 ]] && { echo "demo: not all Ready after 60 s; see $work/operator.log" >&2; exit 1; }
  sleep 0.5
done

echo; "$kubectl" get d365c -n orders
cat <<MSG

All $total orders are Ready. Poke it from another terminal:
  export KUBECONFIG=$work/kubeconfig
  kubectl get sos -n orders -w
  kubectl describe sos -n orders so-2025-0001                      # Events, conditions, ETags
  # inject conflicts (a concurrent writer before 40% of PATCHes), then change an order:
  curl -s -X PUT localhost:$emulator_port/_emulator/faults -H 'content-type: application/json' -d '{"conflictRate":0.4}'
  kubectl patch sos -n orders so-2025-0004 --type merge -p '{"spec":{"salesStatus":"Delivered"}}'
  # drift in D365 is repaired on the next resync, or at once with:
  kubectl annotate sos -n orders so-2025-0004 d365.salesops.io/reconcile-requested-at="\$(date -Is)" --overwrite
  curl -s localhost:$emulator_port/_emulator/history | head -c 600; echo   # every write and its If-Match
  curl -s localhost:$operator_port/metrics | grep -E '^(d365_|sales_order_)'
  # the operator reads only Secrets labelled d365.salesops.io/credentials=true:
  # unlabel it and the connection stalls (SecretNotFound), label it again to recover
  kubectl label secret -n orders d365-credentials d365.salesops.io/credentials-
  kubectl get d365c -n orders -o jsonpath='{.items[0].status.conditions[0].message}'; echo
  kubectl label secret -n orders d365-credentials d365.salesops.io/credentials=true
Logs: $work/{operator,emulator,control-plane}.log.  Stop: Ctrl-C.
MSG

if [[ "${DEMO_EXIT_WHEN_READY:-0}" == "1" ]]; then exit 0; fi
wait
