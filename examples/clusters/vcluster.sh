#!/bin/sh
# shoal `script` provisioner for vcluster: one virtual cluster (in its own host namespace) per
# EphemeralCluster, on a host cluster you already have.
#
#   EphemeralClusterClass: {provisioner: script,
#                           parameters: {script: /path/to/vcluster.sh, hostKubeconfig: /path/to/admin-kc}}
#
# Protocol (see docs/ephemeral-clusters.md): `vcluster.sh VERB --name NAME`, a JSON object on stdin,
# a JSON object on stdout; exit 0 done, 10 in progress, 20 permanent failure, 30 unsupported verb,
# other codes transient. Parameters: hostKubeconfig (required), values (path of a vcluster.yaml), server
# (API URL written into handed-over kubeconfigs, e.g. an ingress). install-agent/remove-agent answer 30:
# the controller applies the shoal-agent chart's objects itself through the `credentials` kubeconfig
# (class parameters agentImage, agentNamespace (default shoal-agent), agentServer).
# Needs: vcluster, kubectl, jq. Ownership tags are labels on the host namespace, so `list` (and the
# reaper) find every virtual cluster this controller made, even after a crash.
set -eu

verb=${1:-}
name=${3:-}
input=$(cat)
param() { printf '%s' "$input" | jq -r --arg k "$1" --arg d "$2" '.parameters[$k] // $d'; }

host=$(param hostKubeconfig "")
if [ -z "$host" ]; then echo "parameters.hostKubeconfig is required" >&2; exit 20; fi
k() { kubectl --kubeconfig "$host" "$@"; }
json_state() { jq -n --arg s "$1" --arg m "$2" '{state: $s, message: $m}'; }
ns_phase() { k get namespace "$name" -o jsonpath='{.status.phase}' 2>/dev/null || true; }

case "$verb" in
ensure)
    if [ -z "$(ns_phase)" ]; then
        printf '%s' "$input" | jq --arg n "$name" '{apiVersion: "v1", kind: "Namespace", metadata: {name: $n,
            labels: {"shoal.dev/controller": .tags.controller, "shoal.dev/cluster-uid": .tags.uid,
                     "shoal.dev/expires-at": .tags.expiresAt}}}' | k apply -f - >/dev/null
    fi
    if KUBECONFIG="$host" vcluster list --output json | jq -e --arg n "$name" 'any(.[]; .Name == $n)' >/dev/null; then
        exit 0
    fi
    values=$(param values "")
    set -- create "$name" --namespace "$name" --connect=false --update-current=false
    if [ -n "$values" ]; then set -- "$@" --values "$values"; fi
    KUBECONFIG="$host" vcluster "$@" >/dev/null 2>&1 || exit 1
    exit 10
    ;;
observe)
    phase=$(ns_phase)
    if [ -z "$phase" ]; then json_state ABSENT ""; exit 0; fi
    if [ "$phase" = Terminating ]; then json_state DELETING "host namespace terminating"; exit 0; fi
    status=$(KUBECONFIG="$host" vcluster list --output json |
        jq -r --arg n "$name" '[.[] | select(.Name == $n) | .Status][0] // ""')
    case "$status" in
    Running) json_state READY "vcluster $name is running" ;;
    "") # an interrupted ensure: ask the controller to run it again
        jq -n '{state: "CREATING", message: "vcluster not installed yet", handle: {retryEnsure: true}}' ;;
    *) json_state CREATING "vcluster $name is $status" ;;
    esac
    ;;
credentials)
    server=$(param server "")
    set -- connect "$name" --namespace "$name" --print
    if [ -n "$server" ]; then set -- "$@" --server "$server"; fi
    KUBECONFIG="$host" vcluster "$@" 2>/dev/null | jq -Rs '{kubeconfig: .}'
    ;;
delete)
    if [ -n "$(ns_phase)" ]; then
        KUBECONFIG="$host" vcluster delete "$name" --namespace "$name" --delete-namespace >/dev/null 2>&1 ||
            k delete namespace "$name" --ignore-not-found --wait=false >/dev/null
    fi
    ;;
list)
    controller=$(printf '%s' "$input" | jq -r '.controller')
    k get namespaces -l "shoal.dev/controller=$controller" -o json | jq '{resources: [.items[] | {
        name: .metadata.name, kind: "vcluster", createdAt: .metadata.creationTimestamp,
        tags: {controller: .metadata.labels["shoal.dev/controller"], uid: .metadata.labels["shoal.dev/cluster-uid"],
               expiresAt: .metadata.labels["shoal.dev/expires-at"]}}]}'
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
