"""``tools``: the ARPO environment (arXiv 2507.19849). The model writes ``<python>...</python>``
or ``<search>...</search>``; generation stops on the closing tag (stop strings, kept in the
sampled ids); the tool's result goes back inline as ``<result>...</result>`` (masked) and the
model continues. A turn that ends without a tool call ends the episode; its text is scored by the
configured reward. A closing tag without its opening tag goes
back to the model as an error observation (``info["parse_error"]``).
"""

from __future__ import annotations

import re

from rlkit.envs import builtin_tools
from rlkit.envs.base import Environment, StepResult, register_env
from rlkit.envs.tools import call_tool, get_tool


@register_env("tools")
class ToolEnv(Environment):
    def __init__(
        self, *, tools: list[str] = ("python",), search_corpus: str | None = None, search_text_field: str = "text",
        search_top_k: int = 3, timeout_s: float | None = None,
    ) -> None:  # fmt: skip
        self.tools = tuple(tools)
        for name in self.tools:
            get_tool(name)  # unknown names fail at construction, listing the registered ones
        if "search" in self.tools:
            if not search_corpus:
                raise ValueError("env.params.search_corpus: the search tool needs a corpus (JSONL or datasets folder)")
            builtin_tools.configure_search(search_corpus, text_field=search_text_field, top_k=search_top_k)
        self.timeout_s = timeout_s
        self.stop = tuple(f"</{name}>" for name in self.tools)
        self._open = {name: re.compile(rf"<{re.escape(name)}>(.*)</{re.escape(name)}>\s*$", re.S) for name in self.tools}

    def step(self, action: str) -> StepResult:
        closing = next((n for n in self.tools if action.rstrip().endswith(f"</{n}>")), None)
        if closing is None:
            return StepResult(done=True)
        match = self._open[closing].search(action[action.rfind(f"<{closing}>") :] if f"<{closing}>" in action else "")
        if match is None:
            text = f"error: found </{closing}> without an opening <{closing}>; write <{closing}>...</{closing}>"
            return StepResult(observation=text, info={"parse_error": True})
        result = call_tool(closing, match.group(1), timeout_s=self.timeout_s)
        return StepResult(observation=result.text, info={"tool_results": [result]})
