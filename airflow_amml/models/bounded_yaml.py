"""PyYAML's safe loader, bounded: a model file nested too deep or too large (aliases expanded) is refused at
the offending node while it is composed, before any Python object is built or any walk expands it."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_YAML_DEPTH = 32  # nesting levels, aliases expanded; a model file needs 7
MAX_YAML_NODES = 10_000  # values (keys, items, scalars), aliases expanded; a model file needs ~100


class YamlLimitError(ComposerError):
    """A document nested too deep or too large (aliases expanded): refused while composing, before any walk."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader whose composer refuses, at the offending node, documents nested deeper than
    :data:`MAX_YAML_DEPTH` or holding more than :data:`MAX_YAML_NODES` values once aliases are expanded.

    The composer recurses per nesting level (a 1,000-deep list raised ``RecursionError``), and an alias is
    the node it names, shared, so a few lines of aliases of aliases stand for billions of values that merge
    keys and any walk over the document would expand. Each node's expanded size and height are computed
    once, from its children's, as it is composed; an alias to a node still being composed (a recursive
    structure) is refused too.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) → (values, height), aliases expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            expanded = self._expanded.get(id(node))
            if expanded is None:
                raise YamlLimitError(
                    None,
                    None,
                    f"the YAML alias *{event.anchor} refers to the value that contains it (a loop)",
                    event.start_mark,
                )
            self._check_depth(self._depth + expanded[1], event)
            return node
        self._check_depth(self._depth + 1, event)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children = _children(node)
        size = 1 + sum(self._expanded[id(c)][0] for c in children)
        height = 1 + max((self._expanded[id(c)][1] for c in children), default=0)
        if size > MAX_YAML_NODES:
            raise YamlLimitError(
                None,
                None,
                f"the YAML value here holds more than {MAX_YAML_NODES:,} values (aliases expanded); a model file needs "
                "about a hundred",
                event.start_mark,
            )
        self._expanded[id(node)] = (size, height)
        return node

    @staticmethod
    def _check_depth(depth: int, event: Any) -> None:
        if depth > MAX_YAML_DEPTH:
            raise YamlLimitError(
                None,
                None,
                f"the YAML nests values deeper than {MAX_YAML_DEPTH} levels (aliases expanded); a model file needs 7",
                event.start_mark,
            )


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []
