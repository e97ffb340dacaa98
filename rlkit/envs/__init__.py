"""Multi-turn environments, tools and trajectories for agentic rollouts (docs/agentic.md).

```python
from rlkit.envs import Environment, StepResult, register_env, register_tool, Trajectory
```

Built-ins: environments ``tools`` (ARPO: python / search) and ``lean_feedback``
(Leanabell-Prover-V2); tools ``python`` (sandboxed) and ``search`` (BM25).
"""

from rlkit.envs.base import Environment, StepResult, get_env, list_envs, register_env
from rlkit.envs.render import ChatRenderer, InlineRenderer, make_renderer
from rlkit.envs.tools import Tool, ToolResult, call_tool, get_tool, list_tools, register_tool, unregister_tool
from rlkit.envs.trajectory import Segment, Trajectory

from rlkit.envs import tool_env as _tool_env  # noqa: E402,F401  (registers `tools`, `python`, `search`)
from rlkit.envs import lean_feedback as _lean_feedback  # noqa: E402,F401  (registers `lean_feedback`)

__all__ = [
    "ChatRenderer",
    "Environment",
    "InlineRenderer",
    "Segment",
    "StepResult",
    "Tool",
    "ToolResult",
    "Trajectory",
    "call_tool",
    "get_env",
    "get_tool",
    "list_envs",
    "list_tools",
    "make_renderer",
    "register_env",
    "register_tool",
    "unregister_tool",
]
