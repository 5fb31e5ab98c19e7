#!/bin/sh
# A command probe: the home page answers and names the shop.
set -eu
curl -fsS "${GANTRY_DEPLOYMENT_URL:?}" | grep -q "<h1>shop</h1>"
echo "smoke ok"
