#!/bin/sh
# shoal `script` provisioner for kind (Kubernetes in Docker): one kind cluster per EphemeralCluster.
#
#   EphemeralClusterClass: {provisioner: script, parameters: {script: /path/to/kind.sh}}
#
# Protocol (see docs/ephemeral-clusters.md): `kind.sh VERB --name NAME`, a JSON object on stdin,
# a JSON object on stdout; exit 0 done, 10 in progress, 20 permanent failure, 30 unsupported verb,
# other codes transient. Parameters (class `parameters`, passed on stdin): stateDir (default
# ~/.shoal/kind), image (node image). install-agent/remove-agent answer 30: the controller applies the
# shoal-agent chart's objects itself with the kubeconfig from `credentials` (class parameters
# agentImage, agentNamespace (default shoal-agent), agentServer: the control plane as the cluster sees it).
# Needs: kind, kubectl, jq. Ownership tags live in STATEDIR/NAME.json; `list` reports them.
set -eu

verb=${1:-}
name=${3:-}
input=$(cat)
param() { printf '%s' "$input" | jq -r --arg k "$1" --arg d "$2" '.parameters[$k] // $d'; }

state=$(param stateDir "${HOME:-/tmp}/.shoal/kind")
mkdir -p "$state"
kubeconfig="$state/$name.kubeconfig"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
exists() { kind get clusters 2>/dev/null | grep -qx "$name"; }
json_state() { jq -n --arg s "$1" --arg m "$2" '{state: $s, message: $m}'; }

case "$verb" in
ensure)
    printf '%s' "$input" | jq '.tags' >"$state/$name.json"
    if exists; then exit 0; fi
    if alive "$state/$name.create.pid"; then exit 10; fi
    image=$(param image "")
    set -- create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 120s
    if [ -n "$image" ]; then set -- "$@" --image "$image"; fi
    nohup kind "$@" >"$state/$name.create.log" 2>&1 &
    echo $! >"$state/$name.create.pid"
    exit 10
    ;;
observe)
    if alive "$state/$name.delete.pid"; then json_state DELETING "kind delete running"; exit 0; fi
    if alive "$state/$name.create.pid"; then json_state CREATING "kind create running"; exit 0; fi
    if ! exists; then
        if [ -f "$state/$name.create.log" ] && grep -q "ERROR" "$state/$name.create.log"; then
            json_state FAILED "$(tail -n 3 "$state/$name.create.log" | tr '\n' ' ')"
            exit 0
        fi
        json_state ABSENT ""
        exit 0
    fi
    if kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
        json_state READY "kind cluster $name is ready"
    else
        json_state DEGRADED "API server not ready"
    fi
    ;;
credentials)
    # kind hands out an admin client certificate: deleting the cluster is what revokes it.
    kind get kubeconfig --name "$name" | jq -Rs '{kubeconfig: .}'
    ;;
delete)
    if exists; then kind delete cluster --name "$name" >/dev/null 2>&1 || exit 1; fi
    rm -f "$state/$name.json" "$state/$name.kubeconfig" "$state/$name.create.pid" "$state/$name.create.log"
    ;;
list)
    controller=$(printf '%s' "$input" | jq -r '.controller')
    kind get clusters 2>/dev/null | grep '^ec-' | while read -r cluster; do
        if [ -f "$state/$cluster.json" ]; then tags=$(cat "$state/$cluster.json"); else tags='{}'; fi
        jq -n --arg n "$cluster" --argjson t "$tags" '{name: $n, tags: $t, kind: "kind"}'
    done | jq -s --arg c "$controller" '{resources: [.[] | select((.tags.controller // $c) == $c)]}'
    ;;
install-agent | remove-agent)
    # The controller installs (and removes) the shoal-agent chart's objects itself, with RBAC.
    exit 30
    ;;
*)
    echo "unknown verb: $verb" >&2
    exit 20
    ;;
esac
