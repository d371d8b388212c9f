#!/bin/sh
# shoal `script` provisioner for kind (Kubernetes in Docker): one kind cluster per EphemeralCluster.
#
#   EphemeralClusterClass: {provisioner: script, parameters: {script: /path/to/kind.sh}}
#
# Protocol (see docs/ephemeral-clusters.md): `kind.sh VERB --name NAME`, a JSON object on stdin,
# a JSON object on stdout; exit 0 done, 10 in progress, 20 permanent failure, other codes transient.
# Parameters (class `parameters`, passed on stdin): stateDir (default ~/.shoal/kind), image (node
# image), agentImage (for install-agent), agentNamespace (default shoal-agent).
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
install-agent)
    image=$(param agentImage "")
    ns=$(param agentNamespace shoal-agent)
    if [ -z "$image" ]; then echo "parameters.agentImage is needed to install an agent" >&2; exit 20; fi
    printf '%s' "$input" | jq --arg ns "$ns" --arg image "$image" '
      .agent as $a | {apiVersion: "v1", kind: "List", items: [
        {apiVersion: "v1", kind: "Namespace", metadata: {name: $ns}},
        {apiVersion: "v1", kind: "Secret", metadata: {name: "shoal-agent", namespace: $ns},
         stringData: {token: $a.token}},
        {apiVersion: "apps/v1", kind: "Deployment", metadata: {name: "shoal-agent", namespace: $ns},
         spec: {replicas: 1, selector: {matchLabels: {app: "shoal-agent"}},
           template: {metadata: {labels: {app: "shoal-agent"}}, spec: {containers: [{
             name: "agent", image: $image,
             args: (["agent", "--server", $a.server, "--name", $a.name]
                    + ([$a.labels | to_entries[] | ["--label", "\(.key)=\(.value)"]] | add // [])),
             env: [{name: "SHOAL_AGENT_TOKEN", valueFrom: {secretKeyRef: {name: "shoal-agent", key: "token"}}}]
           }]}}}}]}' | kubectl --kubeconfig "$kubeconfig" apply -f - >/dev/null
    ;;
remove-agent)
    ns=$(param agentNamespace shoal-agent)
    if exists; then
        kubectl --kubeconfig "$kubeconfig" delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
    fi
    ;;
*)
    echo "unknown verb: $verb" >&2
    exit 20
    ;;
esac
