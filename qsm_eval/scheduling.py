"""xdist scheduling for eval sessions: cases go to workers in whole blocks.

A worker batches ahead only over cases it knows it will run next. pytest-xdist's default
``load`` scheduler sends chunks whose size and boundaries a worker cannot know; this
scheduler (installed through xdist's public ``pytest_xdist_make_scheduler`` hook, and only
under ``--dist load``, the default of ``-n``) sends whole blocks of ``block`` consecutive
session positions, the block the worker's runner batches over. Each worker keeps one block
queued beyond the one it runs, so it never waits for the controller.

The choice is made when the first worker's collection arrives: a session whose collection
holds no eval case is scheduled by xdist's own LoadScheduling, untouched.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

from xdist.scheduler import LoadScheduling
from xdist.workermanage import parse_tx_spec_config


class BlockScheduling:
    """Implements xdist's Scheduling protocol over blocks of consecutive positions."""

    def __init__(self, config, log, block: int, numnodes: int):
        self.config, self.log, self.block, self.numnodes = config, log, block, numnodes
        self.pending: dict = {}            # node -> positions sent to it, not yet complete
        self.collections: dict = {}        # node -> its collected node ids
        self.collection: list[str] | None = None
        self.queue: deque[list[int]] = deque()

    @property
    def nodes(self) -> list:
        return list(self.pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.collections) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        return (self.collection_is_completed and not self.queue
                and all(len(p) < 2 for p in self.pending.values()))

    @property
    def has_pending(self) -> bool:
        return bool(self.queue) or any(self.pending.values())

    def add_node(self, node) -> None:
        self.pending[node] = []

    def add_node_collection(self, node, collection: Sequence[str]) -> None:
        self.collections[node] = list(collection)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self.pending[node].remove(item_index)
        self._top_up(node)

    def mark_test_pending(self, item: str) -> None:
        """Run ``item`` again (a ``pytest_handlecrashitem`` plugin asks this of a crashed
        case): it goes first in the queue, as a block of its own."""
        self.queue.appendleft([self.collection.index(item)])
        for node in self.nodes:
            self._top_up(node)

    def remove_pending_tests_from_node(self, node, indices: Sequence[int]) -> None:
        # xdist calls this only after a 'steal' command, which block scheduling never sends.
        raise RuntimeError(f"block scheduling sent no steal, yet {node.gateway.id} unscheduled {list(indices)}")

    def remove_node(self, node) -> str | None:
        """A node that left: a crash leaves positions pending, given back to the others."""
        pending = self.pending.pop(node, [])
        if not pending:
            return None
        crashed, rest = pending[0], pending[1:]
        if rest:
            self.queue.appendleft(rest)
        for other in self.nodes:
            self._top_up(other)
        return self.collection[crashed]

    def schedule(self) -> None:
        if self.collection is not None:  # a node added later
            for node in self.nodes:
                self._top_up(node)
            return
        self.collection = next(iter(self.collections.values()))
        n = len(self.collection)
        self.queue.extend(list(range(start, min(start + self.block, n))) for start in range(0, n, self.block))
        for node in self.nodes:
            self._top_up(node)

    def _top_up(self, node) -> None:
        """Keep a node one block ahead; shut it down once nothing is left to send."""
        if node.shutting_down:
            return
        while self.queue and len(self.pending[node]) <= self.block:
            positions = self.queue.popleft()
            self.pending[node].extend(positions)
            node.send_runtest_some(positions)
        if not self.queue:
            node.shutdown()


class EvalScheduling:
    """Block scheduling for an eval session, xdist's LoadScheduling for any other: decided
    on the first collection a worker reports, before anything is scheduled."""

    def __init__(self, config, log, block: int, is_eval_case: Callable[[str], bool]):
        self._config, self._log, self._block, self._is_eval_case = config, log, block, is_eval_case
        self._nodes: list = []
        self._impl = None

    def add_node(self, node) -> None:
        self._nodes.append(node)  # kept, should the scheduler be replaced at schedule()
        if self._impl is not None:
            self._impl.add_node(node)

    def remove_node(self, node):
        if node in self._nodes:
            self._nodes.remove(node)
        return None if self._impl is None else self._impl.remove_node(node)

    def add_node_collection(self, node, collection: Sequence[str]) -> None:
        if self._impl is None:
            if any(self._is_eval_case(nodeid) for nodeid in collection):
                numnodes = len(parse_tx_spec_config(self._config))
                self._impl = BlockScheduling(self._config, self._log, self._block, numnodes)
            else:
                self._impl = LoadScheduling(self._config, self._log)
            for known in self._nodes:
                self._impl.add_node(known)
        self._impl.add_node_collection(node, collection)

    @property
    def nodes(self) -> list:
        return self._nodes if self._impl is None else self._impl.nodes

    @property
    def collection_is_completed(self) -> bool:
        return self._impl is not None and self._impl.collection_is_completed

    @property
    def tests_finished(self) -> bool:
        return self._impl is not None and self._impl.tests_finished

    @property
    def has_pending(self) -> bool:
        return self._impl is not None and self._impl.has_pending

    def schedule(self) -> None:
        if isinstance(self._impl, BlockScheduling) and self._impl.collection is None:
            collections = list(self._impl.collections.items())
            if any(ids != collections[0][1] for _, ids in collections[1:]):
                # Workers disagree on the items: xdist's own scheduler reports how, and stops.
                self._impl = LoadScheduling(self._config, self._log)
                for node in self._nodes:
                    self._impl.add_node(node)
                for node, ids in collections:
                    self._impl.add_node_collection(node, ids)
        self._impl.schedule()

    def __getattr__(self, name: str):  # mark_test_complete, remove_node, ...: once decided
        return getattr(self._impl, name)
