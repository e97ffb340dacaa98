"""A vLLM engine wrapped for rollouts; runs inside a Ray actor (see :func:`engine_actor`).

Prompts go in as token ids and completions come back as token ids with the
sampled tokens' log-probs (``processed_logprobs``: after temperature, the
distribution the learner recomputes), so nothing is re-tokenized.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rlkit.rollout.types import Completion, SamplingConfig
from rlkit.rollout.weight_sync import BroadcastRequest, ShmManifest, to_wire

# Environment every engine process needs on the CPU path (see DESIGN.md):
#   in-process EngineCore (3 s start instead of 15-19 s; tensors pass by reference),
#   no core reserved for vLLM's own threads (doubles throughput on 2 cores).
CPU_ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}


class RolloutEngine:
    """One vLLM ``LLM`` with rlkit's weight-sync extension."""

    def __init__(
        self,
        *,
        model_path: str,
        dtype: str = "float32",
        seed: int = 0,
        max_model_len: int = 1024,
        kv_cache_bytes: int = 1 << 30,
        enforce_eager: bool = True,
        threads: int | None = None,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        lora_rank: int | None = None,
        multi_turn: bool = False,
    ) -> None:
        """``lora_rank``: serve a LoRA adapter of this rank (``model.lora.sync: adapter``; rlkit/rollout/lora_sync.py).
        ``multi_turn``: an ``env:`` run's engine (smaller KV blocks on CPU, see ``_cpu_scheduler_args``)."""
        import torch
        from vllm import LLM

        if threads:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            kv_cache_memory_bytes=kv_cache_bytes,
            enforce_eager=enforce_eager,
            enable_prefix_caching=True,
            logprobs_mode="processed_logprobs",
            worker_extension_cls="rlkit.rollout.weight_sync.WeightSyncExtension",
            tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size,
            # A parallel engine spans its placement-group bundles through vLLM's Ray executor
            # (it picks up the group this actor runs in, as vLLM's RLHF examples do).
            distributed_executor_backend="ray" if tensor_parallel_size * pipeline_parallel_size > 1 else None,
            **_cpu_scheduler_args(max_model_len, multi_turn=multi_turn),
            **_lora_args(lora_rank),
        )
        self.startup_s = time.perf_counter() - started
        self.weight_version = 0
        self.lora_request = None  # set by load_adapter; then every generate names the adapter

    def ready(self) -> dict[str, Any]:
        from rlkit.cluster.calls import where

        return {"startup_s": self.startup_s, "weight_version": self.weight_version, **where()}

    def generate(self, prompt_token_ids: list[list[int]], sampling: SamplingConfig) -> list[Completion]:
        """``sampling.n`` completions per prompt, grouped prompt by prompt, in prompt order."""
        from vllm import SamplingParams, TokensPrompt

        params = [  # one per prompt: its seed (SamplingConfig.seeds) makes its samples batch-independent
            SamplingParams(
                n=sampling.prompt_n(index),
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
                max_tokens=sampling.prompt_max_tokens(index),
                stop=list(sampling.stop) or None,
                seed=sampling.prompt_seed(index),
                ignore_eos=sampling.ignore_eos,
                logprobs=sampling.top_logprobs,
                include_stop_str_in_output=sampling.include_stop,
            )
            for index in range(len(prompt_token_ids))
        ]
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_token_ids]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False, lora_request=self.lora_request)
        completions = []
        for index, request in enumerate(outputs):
            for out in request.outputs:
                logprobs = [step[token].logprob for step, token in zip(out.logprobs, out.token_ids)]
                info = _stop_and_top_logprobs(out, sampling.top_logprobs)
                info["weight_version"] = self.weight_version  # the weights that sampled it (async staleness)
                completions.append(
                    Completion(
                        prompt_index=index,
                        token_ids=list(out.token_ids),
                        logprobs=logprobs,
                        text=out.text,
                        finish_reason=out.finish_reason or "abort",
                        info=info,
                    )
                )
        return completions

    def join_weight_group(
        self, host: str, port: int, rank_offset: int, world_size: int, backend: str, timeout_s: float
    ) -> list[int]:
        """Every worker of this engine joins the weight-broadcast group (rlkit/rollout/transport/broadcast.py)."""
        return self.llm.collective_rpc("rlkit_join_weight_group", args=(host, port, rank_offset, world_size, backend, timeout_s))

    def load_weights(self, request: ShmManifest | BroadcastRequest) -> dict[str, float]:
        """Load a new weight version (a verified shared-memory file or a broadcast); returns the version
        every worker loaded and the seconds taken."""
        started = time.perf_counter()
        versions = set(self.llm.collective_rpc("rlkit_load_weights", args=(to_wire(request),)))
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights
        if versions != {request.version}:
            raise RuntimeError(f"engine workers loaded weight versions {sorted(versions)}, expected {request.version}")
        self.weight_version = request.version
        return {"version": self.weight_version, "seconds": time.perf_counter() - started}

    def load_adapter(self, tensors: dict, config: dict, version: int) -> dict[str, float]:
        """Replace the LoRA adapter in every worker with ``tensors`` (PEFT names) under the one fixed
        adapter id (rlkit/rollout/lora_sync.py); returns the version, the LoRA modules loaded, seconds."""
        from rlkit.rollout.lora_sync import lora_request

        started = time.perf_counter()
        modules = self.llm.collective_rpc("rlkit_load_adapter", args=(tensors, config))
        self.llm.reset_prefix_cache()  # cached KV was computed with the old adapter
        self.lora_request = lora_request()
        self.weight_version = version
        return {"version": version, "modules": float(min(modules)), "seconds": time.perf_counter() - started}

    def prompt_logprobs(self, sequences: list[list[int]]) -> list[list[float]]:
        """Log-prob of every token after the first in each sequence, under the engine's current weights."""
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        prompts = [TokensPrompt(prompt_token_ids=s) for s in sequences]
        if self.lora_request is None:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        else:  # vLLM 0.32's LoRA logits layer on CPU fails on prompt log-probs of several requests in one batch
            outputs = [self.llm.generate([p], params, use_tqdm=False, lora_request=self.lora_request)[0] for p in prompts]
        return [
            [step[token].logprob for step, token in zip(out.prompt_logprobs[1:], seq[1:])]
            for out, seq in zip(outputs, sequences)
        ]


def _lora_args(lora_rank: int | None) -> dict:
    """vLLM's LoRA settings for one adapter of rank ``lora_rank`` (None: LoRA off)."""
    if lora_rank is None:
        return {}
    from rlkit.rollout.lora_sync import vllm_max_lora_rank

    return {"enable_lora": True, "max_lora_rank": vllm_max_lora_rank(lora_rank), "max_loras": 1, "max_cpu_loras": 1}


MULTI_TURN_CPU_BLOCK_SIZE = 32


def _cpu_scheduler_args(max_model_len: int, *, multi_turn: bool = False) -> dict:
    """On CPU, prompts are never split across scheduler steps (no chunked prefill); a multi-turn
    engine (``multi_turn``: an ``env:`` run) uses KV blocks of 32 tokens instead of vLLM-CPU's 128.

    A seeded request (every rollout request: ``sampling_seed``) that is prefilled in chunks
    makes vLLM 0.32 rewind its generator with ``set_offset``, which CPU generators do not
    support ("CPU Generator does not use offset"); it happens once a generation round's
    prompts exceed the 4096-token CPU batch budget (e.g. 16 prompts x 4 samples).

    Prefix caching reuses only full blocks: with 128-token blocks a turn whose prefix is under
    128 tokens (the CPU demo's 108-token prompt + a 16-token turn) recomputes all of it, and a
    prompt's n samples share none of it. 32 is the smallest size vLLM-CPU runs at full speed
    (it warns below multiples of 32); ``benchmarks/agent_rollout.py`` part 3 measures the loop.
    """
    import torch

    if torch.cuda.is_available():
        return {}
    out = {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 4096)}
    return {**out, "block_size": MULTI_TURN_CPU_BLOCK_SIZE} if multi_turn else out


def _stop_and_top_logprobs(out, k: int) -> dict:
    """``stop_reason`` (the stop string or token that ended the output) and, with ``k``, each
    step's ``top_logprobs`` (the k highest log-probs, descending: ARPO's entropy estimate)."""
    info = {"stop_reason": out.stop_reason} if out.stop_reason is not None else {}
    if k:
        info["top_logprobs"] = [
            sorted((lp.logprob for lp in step.values() if lp.rank is not None and lp.rank <= k), reverse=True)
            for step in out.logprobs
        ]
    return info


def engine_actor(
    *, num_cpus: float = 1, env: dict[str, str] | None = None, threads: int | None = None, cpu: bool = True
):
    """The Ray actor class for :class:`RolloutEngine` with the environment it needs (``cpu``: the CPU path's)."""
    import ray

    env_vars = dict(CPU_ENGINE_ENV) if cpu else {}
    if threads:
        env_vars["OMP_NUM_THREADS"] = str(threads)  # Ray otherwise sets it to num_cpus
    env_vars.update(env or {})
    return ray.remote(RolloutEngine).options(num_cpus=num_cpus, runtime_env={"env_vars": env_vars})
