"""The reward worker process: load rewards, then score one item per message until told to stop.

Protocol (parent -> worker): first the tuple of ModuleSources to load, then per item a
pickled ``(job_id, reward_blob, by_name, params, completion, sample, setup_key)`` tuple,
or ``None`` to exit. Worker -> parent:
``("ready",)`` | ``("init_error", traceback)`` | ``("setup_done", setup_key)`` |
``("result", job_id, RewardResult | None, error_text | None)``.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from rlkit.rewards.modules import ModuleSource, load_module


def worker_main(fd: int, parent_pid: int) -> None:
    """Entry point of a worker process; ``fd`` is its end of the socket pair to the pool."""
    _die_with_parent(parent_pid)
    conn = multiprocessing.connection.Connection(fd)
    try:
        modules: tuple[ModuleSource, ...] = conn.recv()
        import rlkit.rewards  # noqa: F401  (registers the built-in rewards)

        for module in modules:
            load_module(module)
        logging.getLogger("math_verify").setLevel(logging.ERROR)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        return
    conn.send(("ready",))
    serve(conn)


def serve(conn: Any) -> None:
    """Answer scoring messages on ``conn`` until it closes or sends ``None``."""
    from rlkit.rewards.registry import get_reward, get_setup, to_result

    functions: dict[bytes, Callable[..., Any]] = {}
    setups_done: set[bytes] = set()
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        job_id = None
        try:
            message = pickle.loads(raw)
            if message is None:
                return
            job_id, blob, by_name, params, completion, sample, setup_key = message
            fn = functions.get(blob)
            if fn is None:
                fn = get_reward(blob.decode()) if by_name else pickle.loads(blob)
                functions[blob] = fn
            if setup_key not in setups_done:
                setup = get_setup(fn)
                if setup is not None:
                    setup(**params)
                setups_done.add(setup_key)
                conn.send(("setup_done", setup_key))
            result = to_result(fn(completion, sample, **params))
            reply = ("result", job_id, result, None)
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # the item fails, the worker lives on
            payload = pickle.dumps(("result", job_id, None, _describe(e)))
        conn.send_bytes(payload)


def _describe(e: BaseException) -> str:
    text = str(e)
    if len(text) > 2000:
        text = text[:2000] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _die_with_parent(parent_pid: int) -> None:
    """Exit as soon as the pool's process is gone, even in the middle of a hung item.

    A watchdog thread polls the parent pid (PR_SET_PDEATHSIG would also fire when
    the *thread* that started this worker exits, which happens in thread pools).
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="rlkit-parent-watchdog", daemon=True).start()
