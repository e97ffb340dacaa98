"""Driver side of weight sync: which engine gets which transport, one sync, and the version check.

Per engine, the transport is chosen by comparing the engine's Ray node id with
learner rank 0's (``rollout.weight_transport: auto``), or forced (``shm``,
``broadcast``). A sync numbers a new weight version, streams it from the
learners' shards (rank 0 writes the shm file and/or broadcasts each bucket while
the broadcast engines receive it), then has the shm engines load the verified
file. Every engine reports the version it loaded; :meth:`WeightSync.check_versions`
refuses to generate when one differs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rlkit.cluster.calls import gather
from rlkit.rollout.transport.base import choose_transports, refuse_stale_engines, transport_code
from rlkit.rollout.weight_sync import BroadcastRequest

logger = logging.getLogger("rlkit")


@dataclass(frozen=True)
class SyncSettings:
    mode: str  # auto | shm | broadcast
    dtype: str  # the engines' dtype: weights are sent in it
    bucket_bytes: int
    workers_per_engine: int  # tensor_parallel_size x pipeline_parallel_size
    backend: str  # gloo | nccl, for the broadcast group
    timeout_s: float


class WeightSync:
    """Pushes the learners' weights into an :class:`~rlkit.cluster.engines.EnginePool`'s engines."""

    def __init__(self, learners, engines, settings: SyncSettings, *, current_step=lambda: None) -> None:
        self.learners, self.engines, self.settings = learners, engines, settings
        self.current_step = current_step
        self.layout = learners.weight_layout(settings.dtype, settings.bucket_bytes)
        self.version = 0  # engines start from the weights they were built with
        self.loaded: list[int] = [0] * len(engines.actors)
        self.transports: list[str] = []
        self._connected_to: list | None = None  # the engine handles the transports were set up for
        self._logged = False
        self.last: dict[str, float] = {}
        self._connect()  # a transport that cannot work (shm across nodes) fails here, before any step

    def _connect(self) -> None:
        """(Re)choose transports and (re)form the broadcast group when the engine set changed."""
        actors = list(self.engines.actors)
        if self._connected_to == actors:
            return
        s = self.settings
        learner = self.learners.infos[0]
        self.transports = choose_transports(
            s.mode, learner_node=learner.node_id, engine_nodes=[i.node_id for i in self.engines.infos]
        )
        receivers = [i for i, t in enumerate(self.transports) if t == "broadcast"]
        broadcast = None
        engine_refs = []
        if receivers:
            host, port = gather([self.learners.workers[0].address.remote()], actors=[learner], what="weight group address",
                                timeout_s=s.timeout_s, step=self.current_step())[0]  # fmt: skip
            world = 1 + len(receivers) * s.workers_per_engine
            broadcast = dict(host=host, port=port, world_size=world, backend=s.backend, timeout_s=s.timeout_s)
            for k, i in enumerate(receivers):
                engine_refs.append(actors[i].join_weight_group.remote(
                    host, port, 1 + k * s.workers_per_engine, world, s.backend, s.timeout_s
                ))  # fmt: skip
        learner_refs = self.learners.start("open_weight_transport", shm="shm" in self.transports, broadcast=broadcast)
        gather(engine_refs, actors=[self.engines.infos[i] for i in receivers], what="join weight group",
               timeout_s=s.timeout_s, step=self.current_step())  # fmt: skip
        self.learners.wait(learner_refs, "open weight transport")
        self._connected_to = actors
        if not self._logged:
            detail = ", ".join(f"{info.name}: {t}" for info, t in zip(self.engines.infos, self.transports))
            logger.info("weight transport (%s, %s, %d buckets of <= %.0f MiB): %s", s.mode, s.backend,
                        len(self.layout.buckets), s.bucket_bytes / 2**20, detail)  # fmt: skip
            self._logged = True

    def sync(self) -> dict[str, float]:
        """Send a new weight version to every engine; returns the ``sync/*`` metrics."""
        self.version += 1
        return self._push(self.version)

    def resync(self) -> dict[str, float]:
        """Send the current version again (an engine restarted holding the starting weights)."""
        return self._push(self.version) if self.version > 0 else {}

    def _push(self, version: int) -> dict[str, float]:
        self._connect()
        s, actors = self.settings, list(self.engines.actors)
        shm, receivers = "shm" in self.transports, [i for i, t in enumerate(self.transports) if t == "broadcast"]
        request = BroadcastRequest(self.layout, version)
        engine_refs = {i: actors[i].load_weights.remote(request) for i in receivers}
        # what="export_weights": the learners' side of a sync, as errors name it
        sent = self.learners.wait(self.learners.start("send_weights", version, shm=shm, broadcast=bool(receivers)),
                                  "export_weights")[0]  # fmt: skip
        for i, t in enumerate(self.transports):
            if t == "shm":
                engine_refs[i] = actors[i].load_weights.remote(sent["manifest"])
        order = sorted(engine_refs)
        results = gather([engine_refs[i] for i in order], actors=[self.engines.infos[i] for i in order],
                         what="load_weights", timeout_s=s.timeout_s, step=self.current_step())  # fmt: skip
        for i, result in zip(order, results):
            self.loaded[i] = result["version"]
        self.check_versions()
        self.last = {
            "sync/transport": float(transport_code(self.transports)),
            "sync/bytes": float(sent["bytes"]),
            "sync/send_s": sent["seconds"],
            "sync/learner_peak_extra_mib": sent["peak_extra_bytes"] / 2**20,
        }
        return self.last

    def check_versions(self) -> None:
        """Raise unless every engine reported loading the current weight version."""
        if len(self.loaded) != len(self.engines.actors):
            self.loaded = [0] * len(self.engines.actors)
        refuse_stale_engines(self.engines.infos, self.loaded, self.version, step=self.current_step())

    def close(self) -> None:
        """Nothing to release on the driver: the learner and engine ends close with their actors."""
