"""Running on a Ray cluster: joining it, placing actors, starting engines, readable failures.

* :mod:`rlkit.cluster.ray_init`: join or start Ray;
* :mod:`rlkit.cluster.devices`: the one decision of device, backend and bundle;
* :mod:`rlkit.cluster.placement`: one placement-group layout per run, checked against the cluster;
* :mod:`rlkit.cluster.engines`: the vLLM engine actors, restarted when they die;
* :mod:`rlkit.cluster.calls`: remote calls with timeouts and errors naming actor, node and step.
"""

from rlkit.cluster.calls import ActorDied, ActorInfo, CallTimeout, RemoteCallError, gather
from rlkit.cluster.devices import DeviceChoice, choose
from rlkit.cluster.placement import Placement, PlacementError, PlacementPlan, create_placement, plan_placement
from rlkit.cluster.ray_init import cluster_resources, init_ray

__all__ = [
    "ActorDied", "ActorInfo", "CallTimeout", "DeviceChoice", "Placement", "PlacementError", "PlacementPlan",
    "RemoteCallError", "choose", "cluster_resources", "create_placement", "gather", "init_ray", "plan_placement",
]
