"""Files a check writes (a redacted copy, a signature, a provenance statement, a report), written once.

With a policy floor the runner (:func:`airflow_aisec.core.gate.run_layers`) runs a check under the
gate's own policy and again under the baseline. A check that wrote its output directly would write
it twice, and the first layer's file would stay even when the second layer fails the gate. So a
check hands each output to :func:`deliver`:

* outside a layered run (one policy, or both policies configure the gate identically) it is
  published at once, as before;
* inside one it is *staged*: the next layer sees it (:func:`earlier_output`) and builds on it (the
  redaction redacts the staged copy further, the signing checks the staged signature against its
  own rules and passes it on, a report is the first layer's), and the runner publishes the last
  layer's file once, after a ``pass``/``warn`` verdict (a report after a ``fail`` too) and only when
  every layer delivered it (:class:`LayerOutputs`). Anything not published is removed.

So what is written obeys every layer's rules, and a failed, errored or withheld run writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

#: A staged output: the bytes, or a local file holding them (made by the check, removed if unused).
Staged = bytes | str


@dataclass
class _Delivery:
    layer: int
    staged: Staged
    publish: Callable[[], object]
    on_failure: bool


@dataclass
class LayerOutputs:
    """What the layers of one run staged, by output location."""

    layer: int = 0
    deliveries: dict[str, list[_Delivery]] = field(default_factory=dict)

    def earlier(self, uri: str) -> Staged | None:
        found = [d for d in self.deliveries.get(uri, []) if d.layer < self.layer]
        return found[-1].staged if found else None

    def settle(self, layers: int, publish: bool) -> tuple[dict[str, str], list[str]]:
        """Publish the last layer's output of every location all ``layers`` delivered (when ``publish``,
        or when delivered ``on_failure``), then remove every staged file left.

        Returns:
            The published locations with the sha256 of what was written, and the locations withheld.
        """
        published: dict[str, str] = {}
        withheld: list[str] = []
        try:
            for uri, deliveries in self.deliveries.items():
                wanted = publish or all(d.on_failure for d in deliveries)
                if wanted and {d.layer for d in deliveries} == set(range(layers)):
                    last = deliveries[-1]
                    digest = _sha256(last.staged)
                    last.publish()
                    published[uri] = digest
                else:
                    withheld.append(uri)
        finally:
            for deliveries in self.deliveries.values():
                for d in deliveries:
                    if isinstance(d.staged, str):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(d.staged)
            self.deliveries.clear()
        return published, withheld


_CURRENT: ContextVar[LayerOutputs | None] = ContextVar("aisec_layer_outputs", default=None)


@contextlib.contextmanager
def staging(outputs: LayerOutputs) -> Iterator[LayerOutputs]:
    """Within this block, :func:`deliver` stages into ``outputs`` (the runner's side)."""
    token = _CURRENT.set(outputs)
    try:
        yield outputs
    finally:
        _CURRENT.reset(token)


def earlier_output(uri: str) -> Staged | None:
    """What an earlier layer of this run staged for ``uri``; None outside a layered run or if none did."""
    outputs = _CURRENT.get()
    return outputs.earlier(str(uri)) if outputs is not None else None


def deliver(uri: str, staged: Staged, publish: Callable[[], object], *, on_failure: bool = False) -> bool:
    """Hand over an output for ``uri``: ``publish()`` writes ``staged`` there.

    ``on_failure``: written after a ``fail`` verdict too (a report explains the failure); never after
    an exception.

    Returns:
        True when it was published now (no layered run), False when the runner holds it back.
    """
    outputs = _CURRENT.get()
    if outputs is None:
        publish()
        return True
    outputs.deliveries.setdefault(str(uri), []).append(_Delivery(outputs.layer, staged, publish, on_failure))
    return False


def _sha256(staged: Staged) -> str:
    if isinstance(staged, bytes):
        return hashlib.sha256(staged).hexdigest()
    digest = hashlib.sha256()
    with open(staged, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
