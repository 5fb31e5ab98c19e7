#!/bin/sh
# deploy.sh ENVIRONMENT IMAGE PORT: pull IMAGE from the registry and (re)start the
# environment's container on 127.0.0.1:PORT. Used by the deploy jobs, and therefore also
# by `strategy: previous` when Gantry redeploys an earlier commit.
set -eu
env=$1 image=$2 port=$3
name="cd-demo-$env"
echo "deploying $image to $env (127.0.0.1:$port)"
docker pull -q "$image"
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --label dev.gantry.demo=cd -p "127.0.0.1:$port:8080" "$image" >/dev/null
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || { echo "$name did not start"; docker logs "$name"; exit 1; }
    sleep 0.1
done
echo "$name is up: http://127.0.0.1:$port/"
