#!/bin/sh
# Example follower payload (SCRIPT_FOLLOWER_PATH): runs while this node does
# not lead (follower, candidate or learner). It keeps running through
# elections; it is ended (SIGTERM, then SIGKILL) when the node becomes
# leader. RAFT_LEADER_URL is the leader when it started, empty if none was
# known yet: ask GET $RAFT_LEADER_URL/api/status, or this node's own
# /api/status, for the current one.
set -u
echo "node ${RAFT_NODE_ID} is ${RAFT_ROLE} in term ${RAFT_TERM}; leader: ${RAFT_LEADER_URL:-unknown}"
trap 'echo "stopping: this node is about to lead"; exit 0' TERM INT
while :; do
    sleep 300 &
    wait $!
done
