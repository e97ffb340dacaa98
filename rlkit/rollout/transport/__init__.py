"""Weight transports from the learners to the rollout engines (DESIGN.md "Beyond one host").

- :mod:`.base`: the bucketed layout of a weight version and the per-engine transport choice;
- :mod:`.shm`: same node, a shared-memory file with a verified header;
- :mod:`.broadcast`: any node, a gloo (CPU) or NCCL (GPU) broadcast group;
- :mod:`.stream`: learner side, buckets gathered straight from the FSDP2 shards;
- :mod:`.sync`: driver side, one sync and the engines' version check.
"""

from rlkit.rollout.transport.base import (
    TRANSPORT_CODES,
    WeightLayout,
    WeightSyncError,
    choose_transports,
    plan_layout,
)

__all__ = ["TRANSPORT_CODES", "WeightLayout", "WeightSyncError", "choose_transports", "plan_layout"]
