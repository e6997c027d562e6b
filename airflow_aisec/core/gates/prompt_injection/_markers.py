"""Chat-template role markers and tool/function-call shapes smuggled into data.

Markers are the special tokens and headers chat templates use to delimit turns (ChatML
``<|im_start|>system``, Llama ``[INST]`` / ``<<SYS>>`` / ``<|start_header_id|>``, Gemma
``<start_of_turn>``, harmony ``<|channel|>``, Markdown ``### System:`` headers, Bing's
``[system](#...)``): in data they let a document open a turn of its own. Tool-call shapes are the
JSON / XML a model emits to call a tool (``"tool_calls": [{"function": {"name": ..., "arguments":
...}}]``, ``<tool_call>{...}``, ``<function=name>``, ``<invoke name=...>``): in data they can make an
agent believe a call was requested. Tool *definitions* (``"parameters"`` schemas) are not calls.
"""

from __future__ import annotations

import re

from airflow_aisec.core.gates.prompt_injection._pattern import to_python, to_re2

_SPECIAL_TOKENS = (r"im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|end_of_text"
                   r"|start_header_id|end_header_id|eot_id|eom_id|python_tag|tool_call|tool_response|channel"
                   r"|message|start|end|return|constrain|fim_prefix|fim_middle|fim_suffix|endofprompt")
# (template, case-insensitive)
# A token quoted as a string literal or in backticks is code or documentation about templates.
_NOT_QUOTED_BEFORE = r"(?<![\"'])"
_NOT_QUOTED_AFTER = r"(?![\"'])"
_MARKERS: tuple[tuple[str, bool], ...] = (
    (rf"{_NOT_QUOTED_BEFORE}<\|(?:{_SPECIAL_TOKENS})\|>{_NOT_QUOTED_AFTER}", True),
    (rf"{_NOT_QUOTED_BEFORE}\[/?INST\]{_NOT_QUOTED_AFTER}", False),
    (rf"{_NOT_QUOTED_BEFORE}<</?SYS>>{_NOT_QUOTED_AFTER}", False),
    (rf"{_NOT_QUOTED_BEFORE}<(?:start_of_turn|end_of_turn)>{_NOT_QUOTED_AFTER}", True),
    ((r"^[ \t]*#{2,4}[ \t]*(?:System|SYSTEM)(?:[ \t]+(?:Prompt|Message|Instructions?|PROMPT|MESSAGE|INSTRUCTIONS?))?"
     r"[ \t]*:"), False),
    (r"\[system\]\(#", True),
    (r"^[ \t]*(?:SYSTEM|System)[ \t]*(?:OVERRIDE|PROMPT|INSTRUCTIONS?)[ \t]*:", False),
)

_TOOL_KEY = r"\"(?:tool_calls|function_call|tool_use|toolUse)\"%:"
_TOOL_PATTERNS: tuple[str, ...] = (
    r"<(?:tool_call|function_call|function_calls)>%[\{\[<]",
    r"<function=[A-Za-z_][A-Za-z0-9_.\-]{0,63}>",
    r"\{%\"name\"%:%\"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\"%,%\"(?:arguments|args)\"%:%[\{\"]",
)
_TOOL_ANCHORS = (
    r"\"(?:tool_calls|function_call|tool_use|toolUse)\"",
    r"<invoke~name=",
)
_NAME = re.compile(r"\"name\"\s*:\s*\"")
_ARGS = re.compile(r"\"(?:arguments|input|args)\"\s*:")
_INVOKE = re.compile(to_python(r"<invoke~name=[\"'][^\"']{1,64}[\"']>"), re.IGNORECASE)
_PARAM = re.compile(r"<parameter\s+name=", re.IGNORECASE)
_TOOL_KEY_RE = re.compile(to_python(_TOOL_KEY))


_MARKER_RE = re.compile("|".join(f"(?{'im' if ci else 'm'}:{to_python(t)})" for t, ci in _MARKERS))
_TOOL_RE = re.compile("|".join(f"(?:{to_python(t)})" for t in _TOOL_PATTERNS))

#: RE2 anchors: every marker / tool-call shape contains a match of one of these.
MARKER_ANCHORS: tuple[str, ...] = tuple(f"(?i:{to_re2(t)})" if ci else to_re2(t) for t, ci in _MARKERS)
TOOL_ANCHORS: tuple[str, ...] = (*(to_re2(t) for t in _TOOL_PATTERNS), to_re2(_TOOL_ANCHORS[0]),
                                  f"(?i:{to_re2(_TOOL_ANCHORS[1])})")


def chat_template_marker(text: str) -> bool:
    """A chat-template special token or role header."""
    return bool(_MARKER_RE.search(text))


def tool_call_shape(text: str) -> bool:
    """A tool/function *call* (name plus arguments), as JSON or as one of the XML-ish call syntaxes."""
    if _TOOL_RE.search(text):
        return True
    for match in _TOOL_KEY_RE.finditer(text):
        window = text[match.end():match.end() + 600]
        if _NAME.search(window) and _ARGS.search(window):
            return True
    for match in _INVOKE.finditer(text):
        if _PARAM.search(text, match.end(), match.end() + 600):
            return True
    return False
