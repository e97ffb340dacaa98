"""One placement-group layout per run, built from the config and checked against the cluster.

* learners: one bundle per rank, ``PACK`` (ranks share nodes where they fit);
* engines: one bundle set per engine, ``tensor_parallel_size x pipeline_parallel_size``
  bundles, ``STRICT_PACK`` (an engine's ranks talk over NVLink, never across nodes);
* ``ray.colocate``: no engine groups; engine i runs in learner bundles ``i*n .. i*n+n-1``.

:func:`plan_placement` is pure (config + ``ray.cluster_resources()`` in, bundles out)
and refuses a layout the cluster cannot hold before any actor starts;
:func:`create_placement` asks Ray for the groups and waits until they are placed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from rlkit.cluster.devices import COLOCATED_SHARE, DeviceChoice, choose

logger = logging.getLogger("rlkit")


class PlacementError(RuntimeError):
    """The cluster cannot hold the run's layout; the message says what was asked and what it has."""


@dataclass(frozen=True)
class PlacementPlan:
    learner: DeviceChoice
    engine: DeviceChoice
    world_size: int
    num_engines: int
    engine_size: int  # bundles per engine: tensor_parallel_size x pipeline_parallel_size
    colocate: bool = False

    @property
    def learner_bundles(self) -> list[dict[str, float]]:
        return [dict(self.learner.bundle) for _ in range(self.world_size)]

    @property
    def engine_bundles(self) -> list[list[dict[str, float]]]:
        """One bundle list per engine (empty when colocated: engines use the learners' bundles)."""
        if self.colocate:
            return []
        return [[dict(self.engine.bundle) for _ in range(self.engine_size)] for _ in range(self.num_engines)]

    @property
    def learner_share(self) -> float:
        """Fraction of its bundle a learner rank or an engine asks for (half each when colocated)."""
        return COLOCATED_SHARE if self.colocate else 1.0

    def totals(self) -> dict[str, float]:
        total: dict[str, float] = defaultdict(float)
        for bundle in self.learner_bundles + [b for engine in self.engine_bundles for b in engine]:
            for name, amount in bundle.items():
                total[name] += amount
        return dict(total)


def plan_placement(cfg, cluster: dict[str, float], *, with_learners: bool = True) -> PlacementPlan:
    """The layout of ``cfg`` (an :class:`~rlkit.config.ExperimentConfig`), checked against ``cluster``
    (``ray.cluster_resources()``). ``with_learners`` False: engines only (evaluation)."""
    r, lr = cfg.rollout, cfg.learner
    learner = choose(resources=lr.resources, cluster=cluster, backend=lr.backend, key="learner.resources")
    engine_size = r.tensor_parallel_size * r.pipeline_parallel_size
    if cfg.ray.colocate:
        if r.num_engines * engine_size > lr.world_size:
            raise PlacementError(
                f"ray.colocate: {r.num_engines} engine(s) x {engine_size} bundle(s) (rollout.num_engines x "
                f"tensor_parallel_size x pipeline_parallel_size) need more than the {lr.world_size} learner "
                "bundle(s) (learner.world_size) they would share"
            )
        if r.resources is not None:
            raise PlacementError("ray.colocate: engines run in the learners' bundles; leave rollout.resources unset")
        engine = learner
    else:
        engine = choose(resources=r.resources, cluster=cluster, key="rollout.resources")
    if engine_size > 1 and not engine.gpu:
        raise PlacementError(
            f"rollout.tensor_parallel_size x pipeline_parallel_size = {engine_size} needs GPU bundles; "
            f"rollout.resources={r.resources} gives engines none (vLLM parallelism is GPU-only)"
        )
    plan = PlacementPlan(
        learner=learner, engine=engine, world_size=lr.world_size if with_learners else 0, num_engines=r.num_engines,
        engine_size=engine_size, colocate=cfg.ray.colocate,
    )
    check_fits(plan, cluster)
    return plan


def check_fits(plan: PlacementPlan, cluster: dict[str, float]) -> None:
    """Refuse a plan whose bundles add up to more of any resource than the cluster has."""
    asked = plan.totals()
    short = {k: v for k, v in asked.items() if v > cluster.get(k, 0.0) + 1e-9}
    if not short:
        return
    engines = "(colocated in the learner bundles)" if plan.colocate else (
        f"rollout.resources -> {plan.engine.bundle} x {plan.engine_size} bundle(s) x {plan.num_engines} engine(s)"
    )
    raise PlacementError(
        "the cluster cannot place this run: it asks for "
        f"{_fmt(asked)} (learner.resources -> {plan.learner.bundle} x {plan.world_size} rank(s); {engines}) "
        f"but the cluster has {_fmt(cluster)}; short of "
        + ", ".join(f"{k} (asked {v:g}, has {cluster.get(k, 0.0):g})" for k, v in sorted(short.items()))
    )


def _fmt(resources: dict[str, float]) -> str:
    shown = {k: v for k, v in resources.items() if not k.startswith("node:") and "memory" not in k}
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(shown.items())) + "}"


@dataclass
class Placement:
    """The run's placement groups once Ray has placed them."""

    plan: PlacementPlan
    learner_group: object
    engine_groups: list = field(default_factory=list)

    def learner_options(self, rank: int) -> dict:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from rlkit.cluster.devices import actor_resources

        return {
            **actor_resources(self.plan.learner.bundle, share=self.plan.learner_share),
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.learner_group, placement_group_bundle_index=rank
            ),
        }

    def engine_bundles(self, index: int) -> tuple[object, list[int]]:
        """The placement group engine ``index`` runs in and its bundle indices there."""
        n = self.plan.engine_size
        if self.plan.colocate:
            return self.learner_group, list(range(index * n, index * n + n))
        return self.engine_groups[index], list(range(n))

    def remove(self) -> None:
        from ray.util import remove_placement_group

        for group in [g for g in [self.learner_group, *self.engine_groups] if g is not None]:
            try:
                remove_placement_group(group)
            except Exception:  # noqa: BLE001 - already gone with its cluster
                pass


def create_placement(plan: PlacementPlan, *, timeout_s: float, name: str = "rlkit") -> Placement:
    """Ask Ray for the plan's groups; raise :class:`PlacementError` if they are not placed in ``timeout_s``."""
    import uuid

    import ray
    from ray.util import placement_group

    name = f"{name}-{uuid.uuid4().hex[:6]}"  # two runs of one name may share a cluster
    learner_group = (
        placement_group(plan.learner_bundles, strategy="PACK", name=f"{name}-learners") if plan.world_size else None
    )
    engine_groups = [
        placement_group(bundles, strategy="STRICT_PACK", name=f"{name}-engine{i}")
        for i, bundles in enumerate(plan.engine_bundles)
    ]
    placement = Placement(plan=plan, learner_group=learner_group, engine_groups=engine_groups)
    groups = {f"engine {i}": g for i, g in enumerate(engine_groups)}
    if learner_group is not None:
        groups["learners"] = learner_group
    refs = {label: g.ready() for label, g in groups.items()}
    _, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    if pending:
        waiting = [label for label, ref in refs.items() if ref in pending]
        placement.remove()
        raise PlacementError(
            f"placement groups not placed after {timeout_s:g} s (ray.startup_timeout_s): {', '.join(waiting)} "
            f"still waiting; each learner bundle {plan.learner.bundle} (PACK), each engine "
            f"{plan.engine_size} x {plan.engine.bundle} (STRICT_PACK: all on one node); nodes: {_node_summary()}"
        )
    logger.info(
        "placement: %d learner bundle(s) %s, %s", plan.world_size, plan.learner.bundle,
        "engines colocated" if plan.colocate else f"{plan.num_engines} engine(s) x {plan.engine_size} {plan.engine.bundle}",
    )  # fmt: skip
    return placement


def _node_summary() -> str:
    import ray

    return "; ".join(
        f"{n['NodeManagerAddress']} {_fmt(n['Resources'])}" for n in ray.nodes() if n.get("Alive")
    )
