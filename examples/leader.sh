#!/bin/sh
# Example leader payload (SCRIPT_LEADER_PATH): runs while this node leads.
#
# raft-trio starts it in a process group of its own when the node becomes
# leader, and on losing leadership sends the whole group SIGTERM, then
# SIGKILL after a grace period. Its output goes to the node's log, tagged
# "[leader.sh]". If it exits while the node still leads, it is started again
# with back-off. The environment tells it where it stands:
#   RAFT_NODE_ID, RAFT_ROLE, RAFT_TERM, RAFT_LEADER_URL
set -u
echo "node ${RAFT_NODE_ID} leads in term ${RAFT_TERM} (${RAFT_LEADER_URL})"
trap 'echo "leadership of term ${RAFT_TERM} ended: stopping"; exit 0' TERM INT
while :; do
    # sleep in the background and wait: the trap runs as soon as a signal comes
    sleep 30 &
    wait $!
    echo "still leading in term ${RAFT_TERM}"
done
