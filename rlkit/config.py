"""Typed experiment config: YAML + dotted command-line overrides.

``load_config("x.yaml", overrides=["trainer.total_steps=5"])`` returns a
validated :class:`ExperimentConfig`. Unknown keys and bad values fail here, before
any worker starts, with the key's dotted path and what was expected. A config may
name a ``base:`` YAML (path relative to itself) that it deep-merges over.

Imports without torch, Ray or vLLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlkit.algorithm_config import AlgorithmConfig
from rlkit.envs.config import ArpoConfig, EnvConfig
from rlkit.rewards.config import RewardConfig
from rlkit.tracking.config import LogConfig


class ConfigError(ValueError):
    """A config that cannot be loaded; the message lists every bad key by dotted path."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class LoraConfig(StrictModel):
    """LoRA adapters through PEFT (Hu et al. 2021, arXiv:2106.09685: W + (alpha / rank) B A, B = 0 at
    start); only the adapters train. See docs/lora.md."""

    rank: int = Field(32, ge=1, le=512)
    """r; the engines run with vLLM's smallest allowed ``max_lora_rank`` >= r (vLLM allows at most 512)."""
    alpha: float = Field(64.0, gt=0)
    """The adapter's scale is alpha / rank."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapters' input while training (0: the learner's log-probs equal the engines')."""
    target_modules: str | list[str] = "all-linear"
    """PEFT ``target_modules``: ``all-linear`` (every linear layer but the output projection) or module names."""
    exclude_modules: list[str] = Field(default_factory=list)
    """PEFT ``exclude_modules``: module names (or suffixes) left without an adapter."""
    sync: Literal["adapter", "merged"] = "adapter"
    """adapter: the engines run with LoRA enabled and receive only the adapter tensors after each step.
    merged: the learners send base + adapter merged through the normal weight transport; engines run without LoRA."""

    @model_validator(mode="after")
    def _check_targets(self) -> "LoraConfig":
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ValueError("target_modules is empty: give module names (e.g. [q_proj, v_proj]) or 'all-linear'")
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            raise ValueError(f"target_modules must be 'all-linear' or a list of module names, got {self.target_modules!r}")
        return self


class ModelConfig(StrictModel):
    path: str = "embedded:smollm2-135m-instruct"
    """A local HF folder, or ``embedded:<name>`` (see rlkit.models.embedded)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    """The learner's attention kernel (transformers ``attn_implementation``); flash_attention_2 needs
    a GPU and the flash-attn package. The engines use vLLM's own attention backend."""
    lora: LoraConfig | None = None
    """Train LoRA adapters instead of every weight (None: full fine-tune)."""


class DataConfig(StrictModel):
    source: str = "builtin:arithmetic"
    """``builtin:<generator>``, a .jsonl/.json/.parquet file, or a ``datasets.save_to_disk`` folder."""
    split: str = "train"
    """The split to read: a ``datasets`` folder's split, or a builtin generator's (``builtin:arithmetic``
    has disjoint ``train`` and ``test``: evaluate with ``rlkit eval --split test``)."""
    prompt_field: str = "prompt"
    """Row field holding the prompt: a string (one user turn) or a list of chat messages."""
    required_fields: list[str] = Field(default_factory=lambda: ["answer"])
    """Fields every row must have (the reward reads them); a missing one fails with file, row and field."""
    system_prompt: str | None = None
    few_shot: list[ChatMessage] = Field(default_factory=list)
    """Messages placed before each prompt's user turn (e.g. a one-shot example)."""
    max_prompt_tokens: int = Field(512, gt=0)
    on_long_prompt: Literal["error", "skip"] = "error"
    """Rows whose rendered prompt exceeds ``max_prompt_tokens``, found when the data loads:
    ``error`` stops with their row indexes; ``skip`` drops them (logged with their indexes)."""
    shuffle: bool = True
    builtin: dict[str, Any] = Field(default_factory=dict)
    """Parameters of a ``builtin:`` generator (e.g. ``num_examples``)."""
    template: Literal["chat", "raw"] = "chat"
    """chat: the tokenizer's chat template (system prompt, few-shot, user turn, assistant start).
    raw: ``raw_format`` filled from the row, tokenized as plain text (base models, R1-Zero style)."""
    raw_format: str = "{prompt}"
    """The prompt text for ``template: raw``: a Python format string over the row's fields, e.g.
    ``"A conversation between User and Assistant. ... User: {prompt}\\nAssistant: <think>"``."""
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra variables for the chat template, e.g. ``{enable_thinking: false}`` (Qwen3)."""

    @model_validator(mode="after")
    def _check_template(self) -> "DataConfig":
        import string

        if self.template == "raw":
            if self.system_prompt is not None or self.few_shot or self.chat_template_kwargs:
                raise ValueError("system_prompt, few_shot and chat_template_kwargs belong to template: chat; "
                                 "with template: raw write them into raw_format")
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(self.raw_format) if f is not None]
            except ValueError as err:
                raise ValueError(f"raw_format is not a valid format string: {err}") from None
            if not fields or any(not f.isidentifier() for f in fields):
                raise ValueError(f"raw_format must name row fields as {{field}} (e.g. {{prompt}}), got {self.raw_format!r}")
        return self


class RolloutConfig(StrictModel):
    num_engines: int = Field(1, ge=1)
    group_size: int = Field(4, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling; the learners take log-probs under the same truncated distribution (vLLM's
    ``processed_logprobs``), so ratios, KL and the rollout correction compare like with like."""
    top_k: int = Field(-1, ge=-1)
    """-1 or 0: off. Applied by the learners too, like ``top_p``."""
    max_new_tokens: int = Field(32, gt=0)
    stop: list[str] = Field(default_factory=list)
    max_model_len: int = Field(1024, gt=0)
    kv_cache_gb: float = Field(1.0, gt=0)
    """KV-cache size per engine (on CPU: host memory reserved for it)."""
    enforce_eager: bool = True
    threads: int | None = Field(None, ge=1)
    """Torch threads of each engine (default: all cores)."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs one engine spans (vLLM tensor parallel); its bundles are strictly packed on one node."""
    pipeline_parallel_size: int = Field(1, ge=1)
    """vLLM pipeline stages per engine; an engine takes tensor_parallel_size x this many bundles."""
    resources: dict[str, float] | None = None
    """Ray resources of each engine bundle (one per tensor/pipeline rank), e.g. ``{GPU: 1}`` or
    ``{"node2": 1}``. None: one GPU where the cluster has GPUs, else a tiny CPU share."""
    weight_transport: Literal["auto", "shm", "broadcast"] = "auto"
    """How weights reach each engine after an update: ``shm`` (a verified shared-memory file; only
    on learner rank 0's node), ``broadcast`` (a gloo/NCCL broadcast group; any node), ``auto``:
    per engine, shm on learner rank 0's Ray node, broadcast elsewhere. Forcing shm onto another
    node fails at the first sync with a clear error."""
    chunk_prompts: int | None = Field(None, ge=1)
    """Prompts per work-stealing chunk: each engine takes the next chunk when its previous one returns
    (rlkit/rollout/work_stealing.py). None: all prompts in one call with one engine, else about four
    chunks per engine."""
    weight_bucket_mb: float = Field(256.0, gt=0)
    """Weights stream to the engines in buckets of at most this many MiB (in the engines' dtype):
    the most a learner rank holds beyond its shard during a sync."""
    arpo: ArpoConfig | None = None
    """ARPO's entropy-based adaptive branching (needs ``env``; ``group_size`` must equal ``arpo.budget``)."""

class LearnerConfig(StrictModel):
    world_size: int = Field(1, ge=1)
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-8, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    micro_batch_size: int = Field(8, ge=1)
    max_tokens_per_micro_batch: int | None = Field(None, ge=1)
    """Size micro-batches by tokens instead of ``micro_batch_size`` rows: sequences are bin-packed so a
    micro-batch computes at most this many tokens (packed: the sum of its lengths; padded: rows x the
    longest). A longer sequence gets a micro-batch of its own. Loss weighting stays exact."""
    packing: bool = True
    """Run each micro-batch as one packed row (sequences end to end, per-sequence position ids, no
    padding: rlkit/learner/packing.py). Models that cannot pack fall back to padding with a warning."""
    logprob_chunk_size: int = Field(1024, ge=1)
    threads: int | None = Field(None, ge=1)
    """Torch threads per learner rank (default: cores / world_size)."""
    resources: dict[str, float] | None = None
    """Ray resources of each rank's bundle, e.g. ``{GPU: 1}`` or ``{"node1": 1}``. None: one GPU
    where the cluster has GPUs, else a tiny CPU share (ranks time-share the cores with the engines)."""
    reference_cpu_offload: bool = False
    """Keep the KL reference's shards in host memory between uses (FSDP2 CPUOffloadPolicy; GPU only:
    on CPU they are there already). The reference is held in ``model.dtype``, not fp32."""


class AsyncConfig(StrictModel):
    """One-step-off-policy overlap (rlkit/rollout/overlap.py): the engines generate step n+1's batch
    with step n-1's weights while the learners train step n; docs/algorithms.md "Asynchronous overlap"."""

    enabled: bool = False
    max_staleness: int = Field(1, ge=0)
    """A sample may be trained at most this many weight versions after the one it was generated
    with; a generation that would exceed it waits for the sync instead (0: no overlap). Samples are
    never dropped for staleness after the fact."""


class TrainerConfig(StrictModel):
    total_steps: int = Field(20, ge=1)
    prompts_per_step: int = Field(8, ge=1)
    """Prompt groups in each training batch."""
    prompts_per_generation: int | None = Field(None, ge=1)
    """Prompts per generation round (default: prompts_per_step). Larger, with dynamic
    sampling, over-samples so enough groups survive (Klear: 2x, no refill)."""
    ppo_epochs: int = Field(1, ge=1)
    num_mini_batches: int = Field(1, ge=1)
    save_every: int = Field(10, ge=0)
    """Checkpoint every N steps (0: only at the end); a killed run resumes from the latest one."""
    keep_last: int | None = Field(3, ge=1)
    """Keep only the newest N checkpoints of this run (None: keep all)."""
    save_final: bool = True
    """Save a checkpoint at the end, with the HF form (safetensors that transformers and vLLM load)."""
    save_optimizer: bool = True
    """Save the AdamW state and LR schedule with each checkpoint (about twice the weights' size),
    so ``resume_from`` continues the same optimization."""
    checkpoint_dir: str | None = None
    """Where checkpoints go (default ``<output_dir>/<name>/checkpoints``). Every learner rank writes
    its own shards there (torch.distributed.checkpoint), so when learners span nodes it must be
    storage all of them and the driver share (NFS, a cluster filesystem); the run checks this at
    start with a marker file and stops if a rank cannot see it."""
    resume_from: str | None = None
    """A checkpoint folder (sharded; saved on any world size): weights, step, data order and, where
    saved, the optimizer state. The KL reference stays ``model.path``."""
    max_skipped_steps: int = Field(3, ge=1)
    """An optimizer step whose gradient norm is NaN or inf is skipped (``train/skipped_steps``);
    this many skips in a row stop the run with the step and its loss terms."""
    resume: Literal["never", "auto"] = "never"
    """auto: if the run directory already holds this run, continue from its latest complete
    checkpoint (from scratch when it has none). never: an existing run directory with metrics
    is refused unless ``overwrite``."""
    overwrite: bool = False
    """Delete an existing run directory of the same name and start fresh (``rlkit train --overwrite``)."""
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async")
    """``trainer.async``: generation overlapped with training (``async`` is a Python keyword: ``trainer.async_`` in code)."""

    @model_validator(mode="after")
    def _check_resume(self) -> "TrainerConfig":
        if self.resume == "auto" and self.resume_from:
            raise ValueError("give trainer.resume=auto (latest checkpoint of this run) or trainer.resume_from, not both")
        if self.resume == "auto" and self.overwrite:
            raise ValueError("trainer.resume=auto continues the run that trainer.overwrite would delete; choose one")
        return self


class EvalConfig(StrictModel):
    """Validation during training (rlkit/validation.py): every ``every`` steps, ``prompts`` held-out rows
    through the run's engines, scored with the run's reward."""

    every: int = Field(0, ge=0)
    """Evaluate after every N-th step (0: never)."""
    source: str | None = None
    """Data source of the eval prompts (default: data.source); from Python, ``Trainer(eval_data=...)``."""
    split: str | None = None
    """Split of that source (default: ``test`` when the prompts come from data.source, else the whole
    eval.source, read as ``train``); must not be the training split of the same source."""

    def split_for(self, data: "DataConfig") -> str:
        """The split validation reads: ``split``, or its default for this run's data."""
        if self.split is not None:
            return self.split
        return "test" if (self.source or data.source) == data.source else "train"
    prompts: int = Field(64, ge=1)
    """The first N rows of the split."""
    samples: int = Field(4, ge=1)
    """n sampled answers per prompt (``eval/mean@k``)."""
    pass_k: int | None = Field(None, ge=1)
    """k of ``eval/pass@k`` (unbiased estimator from n samples; default n)."""
    success: float = 1.0
    """Lowest score that counts as a pass."""
    temperature: float | None = Field(None, gt=0)
    """Sampling temperature (default: rollout.temperature)."""
    greedy: bool = True
    """Also score one greedy answer per prompt (``eval/greedy``)."""

    @model_validator(mode="after")
    def _check_k(self) -> "EvalConfig":
        if self.pass_k is not None and self.pass_k > self.samples:
            raise ValueError(f"pass_k={self.pass_k} exceeds samples={self.samples} (pass@k needs k <= n)")
        return self


class ReplayConfig(StrictModel):
    """RLEP phase 2 (algorithms.md section 10): each prompt group gets ``per_prompt`` verified
    answers from ``pool`` (written by ``rlkit collect-pool``) beside its fresh rollouts."""

    pool: str | None = None
    """A replay pool (JSONL); None: no replay."""
    per_prompt: int = Field(2, ge=1)
    """M: replayed answers per prompt and step (fewer where the prompt's pool is smaller)."""


class RayConfig(StrictModel):
    address: str | None = None
    """None starts a local Ray; "auto" or "ray://host:port" joins a cluster."""
    num_cpus: int | None = Field(None, ge=1)
    call_timeout_s: float = Field(3600.0, gt=0)
    """Longest wait for one learner or engine call (a step's generation, a mini-batch, a sync)."""
    startup_timeout_s: float = Field(900.0, gt=0)
    """Longest wait for placement groups to be placed and actors to start."""
    colocate: bool = False
    """Engines share the learners' bundles (engine i on learner bundles i*tp..); on GPU each
    side takes half of every GPU."""
    max_engine_restarts: int = Field(3, ge=0)
    """Restarts of dead engines per run before the run stops."""


class ExperimentConfig(StrictModel):
    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    reward: RewardConfig | None = None
    """Required, except from Python when ``Trainer(reward_fn=...)`` supplies the reward."""
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    env: EnvConfig | None = None
    """Multi-turn agentic rollouts (rlkit.envs, docs/agentic.md); None: one completion per sample."""

    @model_validator(mode="after")
    def _check_agentic(self) -> "ExperimentConfig":
        arpo = self.rollout.arpo
        if arpo is not None and self.env is None:
            raise ValueError("rollout.arpo needs an env: section (ARPO branches after tool results)")
        if arpo is not None and self.rollout.group_size != arpo.budget:
            raise ValueError(f"rollout.group_size ({self.rollout.group_size}) must equal rollout.arpo.budget ({arpo.budget}): M is the group")
        if self.algorithm.attribution == "hard" and arpo is None:
            raise ValueError("algorithm.attribution=hard needs rollout.arpo (only branched trajectories share prefixes)")
        if self.env is not None and self.replay.pool:
            raise ValueError("replay.pool with env: replayed answers carry no per-turn loss mask; use one or the other")
        return self

    @model_validator(mode="after")
    def _check_async(self) -> "ExperimentConfig":
        if not self.trainer.async_.enabled:
            return self
        if self.env is not None:
            raise ValueError("trainer.async.enabled does not support env: (multi-turn rollouts); use one or the other")
        rc = self.algorithm.rollout_correction
        if rc.kind == "none":
            if "rollout_correction" in self.algorithm.model_fields_set:
                raise ValueError(
                    "trainer.async.enabled trains on samples from older weights: algorithm.rollout_correction.kind "
                    "must be tis or mis (docs/algorithms.md, asynchronous overlap), not none"
                )
            self.algorithm.rollout_correction = rc.model_copy(update={"kind": "tis"})  # the default for async
        return self

    @model_validator(mode="after")
    def _check_replay(self) -> "ExperimentConfig":
        kl = self.algorithm.kl
        if self.replay.pool and kl.enabled and kl.target == "reward":
            raise ValueError(
                "replay.pool with algorithm.kl.target=reward: the KL reward needs the sampling log-probs, "
                "which replayed answers do not have; use algorithm.kl.target=loss"
            )
        return self

    @model_validator(mode="after")
    def _check_eval_split(self) -> "ExperimentConfig":
        same_source = (self.eval.source or self.data.source) == self.data.source
        split = self.eval.split_for(self.data)
        if self.eval.every and same_source and split == self.data.split:
            raise ValueError(
                f"eval.split={split!r} is the training split of {self.data.source}: validation needs "
                "held-out prompts (another eval.split, or eval.source)"
            )
        return self

    @model_validator(mode="after")
    def _check_batch_split(self) -> "ExperimentConfig":
        samples = self.trainer.prompts_per_step * self.rollout.group_size
        if self.trainer.num_mini_batches > samples:
            raise ValueError(
                f"trainer.num_mini_batches={self.trainer.num_mini_batches} exceeds the "
                f"{samples} samples of a step (prompts_per_step x group_size)"
            )
        return self

    @model_validator(mode="after")
    def _check_lengths(self) -> "ExperimentConfig":
        prompt, new, model_len = self.data.max_prompt_tokens, self.rollout.max_new_tokens, self.rollout.max_model_len
        if prompt + new > model_len:
            raise ValueError(
                f"data.max_prompt_tokens ({prompt}) + rollout.max_new_tokens ({new}) = {prompt + new} exceeds "
                f"rollout.max_model_len ({model_len}): the engine cannot hold a full prompt and response"
            )
        overlong = self.algorithm.overlong
        if overlong.enabled and overlong.max_len - overlong.cache_len >= new:
            raise ValueError(
                f"algorithm.overlong: the penalty starts above max_len - cache_len = "
                f"{overlong.max_len} - {overlong.cache_len} = {overlong.max_len - overlong.cache_len} tokens, but "
                f"responses stop at rollout.max_new_tokens={new}, so it can never apply; set overlong.max_len "
                f"to the generation budget ({new}) and cache_len below it"
            )
        return self

    @model_validator(mode="after")
    def _check_generation_batch(self) -> "ExperimentConfig":
        extra = self.trainer.prompts_per_generation
        if extra is not None and not self.algorithm.dynamic_sampling.enabled:
            raise ValueError(
                f"trainer.prompts_per_generation={extra} is only for dynamic sampling (it over-samples so "
                "enough groups survive the filter); with algorithm.dynamic_sampling.enabled=false every "
                "generated group is trained on: remove it or set trainer.prompts_per_step"
            )
        return self

    @property
    def sft_threshold(self) -> float:
        """Task score at or above which a response enters the SFT term (``algorithm.sft_threshold``,
        default: the reward's success score; 1.0 when ``Trainer(reward_fn=)`` gives the reward)."""
        threshold = self.algorithm.sft_threshold
        if threshold is not None:
            return threshold
        return self.reward.success_score if self.reward is not None else 1.0

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML experiment (or start from defaults), apply ``a.b.c=value`` overrides, validate."""
    raw: dict[str, Any] = _read_yaml_with_base(Path(path)) if path is not None else {}
    for item in overrides or []:
        _apply_override(raw, item)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source=str(path or "<defaults>"))) from None


def _read_yaml_with_base(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular base: chain {' -> '.join(map(str, _seen + (path,)))}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    return _deep_merge(_read_yaml_with_base(path.parent / base, _seen + (path,)), data)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r}: expected dotted.key=value")
    parts = key.strip().split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(text) if text.strip() else None


def _format_errors(err: ValidationError, *, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            known = _known_keys(e["loc"][:-1])
            lines.append(f"  {where}: unknown key" + (f"; valid keys here: {', '.join(known)}" if known else ""))
        elif e["type"] == "value_error":
            lines.append(f"  {where}: {e['ctx']['error']}")
        elif e["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        else:
            lines.append(f"  {where}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _known_keys(loc: tuple) -> list[str]:
    """Field names of the config section at ``loc`` (empty when it is not a fixed section)."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
