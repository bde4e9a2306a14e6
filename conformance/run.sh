#!/usr/bin/env bash
# Third-party client suites against svcnet (issue 19); the results are in ../CONFORMANCE.md.
#
# Fetching is manual and nothing fetched is committed. Get work trees of:
#   kubernetes-client/python   (its kubernetes/e2e_test and kubernetes/aio/e2e_test)
#   kube-rs/kube               (the #[ignore] tests of its library crates)
# e.g. `git clone --depth 1 <url> /tmp/py` (or `git archive HEAD | tar -x` of a mirror).
#
# Usage (as root, from anywhere; svcnet built with `cargo build -p svcnet`):
#   conformance/run.sh [--python DIR] [--kube DIR] [--flows] [--port N]
# It starts `svcnet up --host-ports=false` on 127.0.0.1:<port> (default 16519) with the seeds'
# images served by registry.py as docker.io's mirror on <port>+1, runs the suites named
# with KUBECONFIG set and nothing else, prints each
# runner's closing line, and stops the cluster (also on failure). Logs go to $OUT (default
# /tmp/svcnet-conformance).
#
# python: a venv under $OUT with the `kubernetes` package from PyPI (the released client;
#   a snapshot's generated core_v1_api.py is over some mirrors' file-size limit), pytest,
#   pytest-timeout, aiohttp; the repo's e2e_test directories are copied, unmodified, into the
#   installed package (they import kubernetes.e2e_test) and run as the repo's CI runs them:
#   `pytest kubernetes/e2e_test kubernetes/aio/e2e_test` (plus --timeout 120 so a pod that never
#   starts fails one test instead of hanging the run).
# kube: the command of kube-rs's CI integration job, `cargo test --lib --workspace --exclude e2e
#   --all-features -- --ignored` (kube-examples excluded: it has no lib). --offline is tried
#   first; without the crates in the local registry cargo resolves them from crates.io.
# flows: conformance/flows.py with kr8s and lightkube (PyPI): create/get/list/watch/patch/
#   apply/delete of ConfigMaps, Services, Pods.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SVCNET=${SVCNET:-$REPO/target/debug/svcnet}
OUT=${OUT:-/tmp/svcnet-conformance}
PORT=16519
PY_SRC="" KUBE_SRC="" FLOWS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY_SRC=$(cd "$2" && pwd); shift 2 ;;
    --kube) KUBE_SRC=$(cd "$2" && pwd); shift 2 ;;
    --flows) FLOWS=1; shift ;;
    --port) PORT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$SVCNET" ] || { echo "build svcnet first: cargo build -p svcnet" >&2; exit 2; }

mkdir -p "$OUT"
DATA=$OUT/cluster
rm -rf "$DATA"
mkdir -p "$DATA/images"
"$SVCNET" images build-seeds --out "$DATA/images" >"$OUT/seeds.log" 2>&1

# The suites' pods use busybox / nginx at tag latest (pull policy Always): a loopback mirror
# of docker.io serves the seeds' archives, so they pull here as from a registry.
REG_PORT=$((PORT + 1))
python3 "$HERE/registry.py" "$REG_PORT" "$DATA"/images/*.tar >"$OUT/registry.log" 2>&1 &
REG_PID=$!
printf 'mirrors:\n  docker.io:\n    endpoint:\n      - "http://127.0.0.1:%s"\n' "$REG_PORT" \
  >"$OUT/registries.yaml"

UP_PID=""
stop() {
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -INT "$UP_PID"
    wait "$UP_PID" 2>/dev/null || true
  fi
  kill "$REG_PID" 2>/dev/null || true
}
trap stop EXIT

"$SVCNET" up --host-ports=false --apiserver-port "$PORT" --data-dir "$DATA" \
  --private-registry "$OUT/registries.yaml" >"$OUT/up.log" 2>&1 &
UP_PID=$!
for _ in $(seq 1 120); do
  grep -q '^ready:' "$OUT/up.log" && break
  kill -0 "$UP_PID" 2>/dev/null || { cat "$OUT/up.log" >&2; exit 1; }
  sleep 1
done
grep -q '^ready:' "$OUT/up.log" || { echo "svcnet up not ready" >&2; exit 1; }
export KUBECONFIG=$DATA/kubeconfig
echo "svcnet $(git -C "$REPO" rev-parse --short HEAD) up on 127.0.0.1:$PORT"

VENV=$OUT/venv
venv() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$@"
}

status=0
if [ -n "$PY_SRC" ]; then
  venv kubernetes pytest pytest-timeout aiohttp aiohttp-retry
  PKG=$("$VENV/bin/python" -c 'import kubernetes, os; print(os.path.dirname(kubernetes.__file__))')
  rm -rf "$PKG/e2e_test" "$PKG/aio/e2e_test"
  cp -r "$PY_SRC/kubernetes/e2e_test" "$PKG/e2e_test"
  cp -r "$PY_SRC/kubernetes/aio/e2e_test" "$PKG/aio/e2e_test"
  (cd "$PKG/.." && "$VENV/bin/pytest" -p no:cacheprovider --timeout 120 -rA -q \
    kubernetes/e2e_test kubernetes/aio/e2e_test) >"$OUT/python.log" 2>&1 || status=1
  echo "python e2e: $(grep -E '^[0-9]+ (passed|failed)|^=+ .*[0-9]+ (passed|failed)' "$OUT/python.log" | tail -1)"
fi

if [ -n "$KUBE_SRC" ]; then
  args=(test --lib --workspace --exclude e2e --exclude kube-examples --all-features --no-fail-fast)
  (cd "$KUBE_SRC" && CARGO_TARGET_DIR=$OUT/kube-target cargo "${args[@]}" --offline --no-run) \
    >"$OUT/kube-build.log" 2>&1 \
    || { echo "kube-rs: cannot build offline (see kube-build.log); resolving from crates.io";
         (cd "$KUBE_SRC" && CARGO_TARGET_DIR=$OUT/kube-target cargo "${args[@]}" --no-run) \
           >>"$OUT/kube-build.log" 2>&1; }
  (cd "$KUBE_SRC" && CARGO_TARGET_DIR=$OUT/kube-target cargo "${args[@]}" -- --ignored) \
    >"$OUT/kube.log" 2>&1 || status=1
  echo "kube-rs --ignored: $(grep '^test result' "$OUT/kube.log" | tr '\n' ' ')"
fi

if [ "$FLOWS" = 1 ]; then
  venv kr8s lightkube
  for c in kr8s lightkube; do
    "$VENV/bin/python" "$HERE/flows.py" "$c" >"$OUT/$c.log" 2>&1 || status=1
    echo "$c flows: $(tail -1 "$OUT/$c.log")"
  done
fi
exit $status
