#!/usr/bin/env bash
# The continuous-delivery example end to end, offline, on this machine:
#
#   bash workflows/cd/demo.sh
#
# 1. builds gantry (release) and the local images it needs (gantry/busybox, gantry/registry);
# 2. starts a local registry (127.0.0.1:$REGISTRY_PORT) and a Slack sink that prints what
#    Slack would receive (workflows/cd/slack_sink.py);
# 3. makes a git repository from workflows/cd/repo (the shop: a busybox httpd site) and runs
#    its pipeline: test → build image → push → deploy staging → health check → approval →
#    deploy production → health check. A second process approves the production deploy
#    with `gantry approve` (after showing that the pusher may not approve her own deploy);
# 4. commits a change that breaks /health and runs again: staging fails its health check,
#    Gantry redeploys the last healthy commit (`rollback: {strategy: previous}`), checks it
#    again, and the run fails with "deployed X, health failed (...), rolled back to Y (healthy)".
#    Production is never touched.
#
# Environment: GANTRY (a gantry binary; default: cargo build --release), DEMO_DIR (where
# the repository goes; default a temp dir, kept), STAGING_PORT PRODUCTION_PORT
# REGISTRY_PORT SLACK_PORT (defaults 18481 18482 15481 18490), KEEP=1 to leave the
# containers running. Exit code 0 when everything happened as described.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STAGING_PORT=${STAGING_PORT:-18481}
PRODUCTION_PORT=${PRODUCTION_PORT:-18482}
REGISTRY_PORT=${REGISTRY_PORT:-15481}
SLACK_PORT=${SLACK_PORT:-18490}
PREFIX=cd-demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "needs a running Docker daemon"
command -v python3 >/dev/null || die "needs python3 (the Slack sink)"
command -v curl >/dev/null || die "needs curl (the deploy script and smoke test)"

if [ -z "${GANTRY:-}" ]; then
    say "building gantry (cargo build --release -p gantry)"
    (cd "$ROOT" && cargo build --release -q -p gantry)
    GANTRY=${CARGO_TARGET_DIR:-$ROOT/target}/release/gantry
fi
[ -x "$GANTRY" ] || die "no gantry binary at $GANTRY"
bash "$ROOT/docker/build-images.sh" busybox registry

WORK=${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/gantry-cd-demo.XXXXXX")}
REPO=$WORK/shop
SINK_LOG=$WORK/slack.jsonl
mkdir -p "$WORK"
rm -rf "$REPO" "$SINK_LOG"

containers() { docker rm -f "$PREFIX-staging" "$PREFIX-production" "$PREFIX-registry" >/dev/null 2>&1 || true; }
SINK_PID=
cleanup() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] || containers
}
trap cleanup EXIT
containers

say "local registry on 127.0.0.1:$REGISTRY_PORT (gantry/registry) and Slack sink on 127.0.0.1:$SLACK_PORT"
docker run -d --name "$PREFIX-registry" -p "127.0.0.1:$REGISTRY_PORT:5000" gantry/registry:latest >/dev/null
python3 -u "$HERE/slack_sink.py" --port "$SLACK_PORT" --log "$SINK_LOG" &
SINK_PID=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" && curl -s -o /dev/null "http://127.0.0.1:$SLACK_PORT/" && break
    sleep 0.1
done

say "repository $REPO (pushed by carol)"
cp -r "$HERE/repo" "$REPO"
sed -i -e "s/__STAGING_PORT__/$STAGING_PORT/g" -e "s/__PRODUCTION_PORT__/$PRODUCTION_PORT/g" "$REPO/.gantry/config.yml"
git -C "$REPO" init -q -b main
git -C "$REPO" config user.name carol
git -C "$REPO" config user.email carol@example.com
git -C "$REPO" add -A
git -C "$REPO" commit -q -m "shop v1: the catalogue"

run_pipeline() {
    "$GANTRY" run push -C "$REPO" --host --offline \
        --var "REGISTRY=127.0.0.1:$REGISTRY_PORT" \
        --var "STAGING_PORT=$STAGING_PORT" --var "PRODUCTION_PORT=$PRODUCTION_PORT" \
        -s "SLACK_WEBHOOK_URL=http://127.0.0.1:$SLACK_PORT/services/T0DEMO/B0DEMO/demo-hook" \
        -s "DEPLOY_TOKEN=demo-deploy-token-42" </dev/null
}

# The reviewers' side: wait for the pending production approval, then decide from this
# second process. carol (the pusher) is refused: prevent_self_review.
approver() {
    local run=""
    for _ in $(seq 600); do
        run=$("$GANTRY" approvals --repo "$REPO" --json 2>/dev/null |
            python3 -c 'import json,sys; p=json.load(sys.stdin); print(p[0]["run_id"] if p else "")' 2>/dev/null || true)
        [ -n "$run" ] && break
        sleep 0.5
    done
    [ -n "$run" ] || { echo "approver: no approval was requested" >&2; return 1; }
    echo "approver> gantry approve $run production --as carol"
    if "$GANTRY" approve "$run" production --as carol --repo "$REPO" --comment "my own change"; then
        echo "approver: self-approval was accepted, which it must not be" >&2
        return 1
    fi
    echo "approver> gantry approve $run production --as alice --comment 'staging is healthy, ship it'"
    "$GANTRY" approve "$run" production --as alice --repo "$REPO" --comment "staging is healthy, ship it"
}

say "run 1: v1 through staging and (after approval) production"
approver &
APPROVER=$!
set +e
run_pipeline
first=$?
set -e
wait "$APPROVER" || die "the approver failed"
[ "$first" -eq 0 ] || die "run 1 failed (exit $first)"
curl -fsS "http://127.0.0.1:$PRODUCTION_PORT/health"; echo

say "run 2: a change that breaks /health"
printf '{"status": "error", "service": "shop", "database": "disconnected"}\n' >"$REPO/www/health"
sed -i 's/Version 1: the catalogue./Version 2: the new catalogue./' "$REPO/www/index.html"
git -C "$REPO" commit -q -am "shop v2: new catalogue (breaks /health)"
set +e
run_pipeline
second=$?
set -e
[ "$second" -eq 1 ] || die "run 2 should fail after the rollback (exit $second)"
echo "staging serves again:"
curl -fsS "http://127.0.0.1:$STAGING_PORT/health"; echo
curl -fsS "http://127.0.0.1:$STAGING_PORT/" | grep -q "Version 1" || die "staging is not back on v1"

say "deployment history (gantry deployments)"
"$GANTRY" deployments --repo "$REPO"

sleep 0.3
say "done: $(wc -l <"$SINK_LOG") Slack messages in $SINK_LOG; repository in $REPO"
