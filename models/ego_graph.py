"""Heterogeneous ego graphs and the PLM4Job prompt built from them.

PLM4Job encodes a member or a job together with its graph neighbourhood: the node's
own text first, then its neighbours' texts ordered by proximity (jobs applied to or
hired into, the companies behind them, members who applied to the same jobs). Each
token carries three graph annotations the encoder can use:

    type_ids   the entity type of the node the token belongs to (member/job/company)
    hop_ids    that node's hop distance from the ego node (0 = the ego itself)
    node_index which node of the ego graph the token belongs to; with the ego graph's
               pairwise node distances this gives token-to-token graph proximity,
               which attention alignment turns into an attention bias

Pure Python on plain ids and strings: no tensors, no Kafka, no simulator.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

# Entity types; id 0 is reserved for padding so an all-padding row embeds to nothing.
NODE_TYPES = ("member", "job", "company")
TYPE_ID = {t: i + 1 for i, t in enumerate(NODE_TYPES)}
PAD_TYPE_ID = 0


def node_key(type: str, entity_id: str) -> str:
    """Graph node id: member, job and company ids live in separate namespaces."""
    if type not in TYPE_ID:
        raise ValueError(f"unknown node type {type!r}; known: {NODE_TYPES}")
    if not entity_id:
        raise ValueError(f"empty {type} id")
    return f"{type}:{entity_id}"

# How strongly an edge ties two nodes; ranks neighbours reached at the same hop.
# A hire says more than an application, which says more than a posting link.
EDGE_WEIGHT = {"hired": 3.0, "apply": 2.0, "similar": 1.0, "posted_by": 1.0}


@dataclass
class Edge:
    kind: str
    weight: float
    time: float  # newest event that made or strengthened the edge (epoch seconds)


@dataclass(frozen=True)
class Link:
    """An observed member-job edge to predict (an application or a hire); node keys."""

    member_id: str
    job_id: str
    kind: str = "apply"
    time: float = 0.0


@dataclass(frozen=True)
class Node:
    node_id: str
    type: str
    text: str


class HeteroGraph:
    """An undirected graph of members, jobs and companies with one edge per pair.

    Repeated events strengthen an edge (the strongest kind wins, the newest time is
    kept), so replaying the same applications twice changes nothing but the time.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.adj: dict[str, dict[str, Edge]] = {}

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def add_node(self, node_id: str, type: str, text: str) -> None:
        if type not in TYPE_ID:
            raise ValueError(f"unknown node type {type!r} for {node_id!r}; known: {NODE_TYPES}")
        self.nodes[node_id] = Node(node_id, type, text)
        self.adj.setdefault(node_id, {})

    def add_edge(self, a: str, b: str, kind: str, time: float = 0.0) -> None:
        for n in (a, b):
            if n not in self.nodes:
                raise KeyError(f"edge {a!r}-{b!r} ({kind}) names unknown node {n!r}; add_node first")
        if kind not in EDGE_WEIGHT:
            raise ValueError(f"unknown edge kind {kind!r}; known: {tuple(EDGE_WEIGHT)}")
        if a == b:
            return
        old = self.adj[a].get(b)
        weight = EDGE_WEIGHT[kind]
        if old is not None and old.weight > weight:
            kind, weight = old.kind, old.weight
        edge = Edge(kind, weight, max(time, old.time) if old else time)
        self.adj[a][b] = edge
        self.adj[b][a] = edge

    def neighbours(self, node_id: str) -> dict[str, Edge]:
        return self.adj.get(node_id, {})

    def degree(self, node_id: str) -> int:
        return len(self.adj.get(node_id, ()))


# ---- ego graph: the proximity-ordered neighbourhood of one node ------------------------


@dataclass(frozen=True)
class EgoNode:
    node_id: str
    type: str
    hop: int
    text: str


@dataclass(frozen=True)
class EgoGraph:
    """nodes[0] is the ego; the rest in prompt order (by hop, then tie strength)."""

    nodes: tuple[EgoNode, ...]
    distances: tuple[tuple[int, ...], ...]  # pairwise hop distances among `nodes`

    @property
    def center(self) -> EgoNode:
        return self.nodes[0]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def ego_graph(
    graph: HeteroGraph,
    center: str,
    *,
    fanout: Sequence[int] = (8, 6),
    exclude_edges: Iterable[tuple[str, str]] = (),
) -> EgoGraph:
    """Breadth-first neighbourhood of `center`, `fanout[h]` nodes kept at hop h+1.

    Proximity orders nodes: first by hop, then by the total weight of edges tying a
    node to the kept nodes one hop closer (a member who co-applied to three of my jobs
    is closer than one who shares one), then by the newest such edge, then by id so the
    order is deterministic. `exclude_edges` hides edges, which link-prediction training
    needs: the member-job pair being predicted must not be visible in either ego graph.
    """
    if center not in graph.nodes:
        raise KeyError(f"ego graph center {center!r} is not in the graph ({len(graph)} nodes)")
    hidden = {_pair(a, b) for a, b in exclude_edges}

    def visible(a: str) -> Iterable[tuple[str, Edge]]:
        for b, e in graph.neighbours(a).items():
            if _pair(a, b) not in hidden:
                yield b, e

    kept = [center]
    hop_of = {center: 0}
    frontier = [center]
    for hop, limit in enumerate(fanout, start=1):
        tie: dict[str, list[float]] = {}  # candidate -> [total weight, newest time]
        for a in frontier:
            for b, e in visible(a):
                if b in hop_of:
                    continue
                t = tie.setdefault(b, [0.0, float("-inf")])
                t[0] += e.weight
                t[1] = max(t[1], e.time)
        ranked = sorted(tie, key=lambda b: (-tie[b][0], -tie[b][1], b))[:limit]
        for b in ranked:
            hop_of[b] = hop
        kept.extend(ranked)
        frontier = ranked
        if not frontier:
            break

    nodes = tuple(
        EgoNode(n, graph.nodes[n].type, hop_of[n], graph.nodes[n].text) for n in kept
    )
    return EgoGraph(nodes, _pairwise_distances(kept, visible))


UNREACHABLE = 99


def _pairwise_distances(kept: list[str], visible) -> tuple[tuple[int, ...], ...]:
    """All-pairs shortest paths inside the subgraph the ego graph induces (n is small)."""
    index = {n: i for i, n in enumerate(kept)}
    local = [[index[b] for b, _ in visible(a) if b in index] for a in kept]
    rows = []
    for s in range(len(kept)):
        dist = [UNREACHABLE] * len(kept)
        dist[s] = 0
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in local[u]:
                if dist[v] == UNREACHABLE:
                    dist[v] = dist[u] + 1
                    queue.append(v)
        rows.append(tuple(dist))
    return tuple(rows)


# ---- prompt: tokens with their graph annotations --------------------------------------


@dataclass(frozen=True)
class EgoPrompt:
    """One encoder input: token ids and, per token, the node it belongs to, that node's
    type and hop; plus the node-to-node distances attention alignment reads."""

    input_ids: list[int]
    node_index: list[int]
    type_ids: list[int]
    hop_ids: list[int]
    node_distances: list[list[int]]
    node_ids: list[str] = field(default_factory=list)  # which nodes made it into the prompt


def ego_prompt(
    ego: EgoGraph,
    tokenize: Callable[[str], Sequence[int]],
    *,
    cls_id: int,
    sep_id: int,
    max_len: int = 128,
    ego_tokens: int = 48,
    neighbour_tokens: int = 16,
    max_hop: int = 3,
) -> EgoPrompt:
    """[CLS] ego text [SEP] neighbour 1 [SEP] neighbour 2 [SEP] ... up to max_len.

    The ego keeps up to `ego_tokens` of its text and each neighbour `neighbour_tokens`,
    so a well-connected node still shows many neighbours. [CLS] belongs to the ego (it is
    the pooled output and sits at hop 0); each [SEP] belongs to the node it closes.
    Nodes that no longer fit are dropped whole, farthest first, since they come last.
    """
    ids, node_index, type_ids, hop_ids, used = [cls_id], [0], [TYPE_ID[ego.center.type]], [0], []
    for i, node in enumerate(ego.nodes):
        budget = ego_tokens if i == 0 else neighbour_tokens
        room = max_len - len(ids) - 1  # keep one place for [SEP]
        if room <= 0 or (i > 0 and room < min(4, budget)):
            break
        text_ids = list(tokenize(node.text))[: min(budget, room)]
        piece = text_ids + [sep_id]
        hop = min(node.hop, max_hop)
        ids.extend(piece)
        node_index.extend([i] * len(piece))
        type_ids.extend([TYPE_ID[node.type]] * len(piece))
        hop_ids.extend([hop] * len(piece))
        used.append(node.node_id)
    n = len(used)
    distances = [list(row[:n]) for row in ego.distances[:n]]
    return EgoPrompt(ids, node_index, type_ids, hop_ids, distances, used)
