"""The PLM4Job encoder behind the job index's `Embedder` protocol, and node texts.

The index asks `embed_jobs(jobs) -> (n, d) float32` and `embed_members(members)`, rows
L2-normalized, with jobs and members as its plain records (JobRecord/MemberRecord,
dicts, or pydantic payloads with the same field names). Each record is embedded with
its ego graph from `graph`, which the caller keeps current from events (see
`serving/graph_data.py`); a record the graph has not seen yet joins it as a node with
no edges (plus its company link), so a brand-new job is embedded from its own text
and its company's.

Node texts are built only from fields the index's records also carry (no free text,
no years of experience), so a node made from an event and one made from a record read
the same.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from models.ego_graph import HeteroGraph, node_key


def _get(obj: Any, name: str, default: Any = "") -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _plain(v: Any) -> str:
    return str(getattr(v, "value", v) or "")


def _skills(obj: Any, limit: int = 10) -> str:
    return ", ".join(list(_get(obj, "skills", ()) or ())[:limit])


def _occupation_adds(obj: Any) -> bool:
    """Most titles already name the occupation ("Senior Nurse" / "nurse"); skip the repeat."""
    occupation = str(_get(obj, "occupation") or "").lower()
    return bool(occupation) and occupation not in str(_get(obj, "title")).lower()


def member_text(member: Any) -> str:
    parts = [f"Title: {_get(member, 'title')}"]
    if _occupation_adds(member):
        parts.append(f"Occupation: {_get(member, 'occupation')}")
    parts += [
        f"Seniority: {_plain(_get(member, 'seniority'))}",
        f"Location: {_get(member, 'location')}",
        f"Skills: {_skills(member) or 'none listed'}",
    ]
    return "\n".join(parts)


def job_text(job: Any, company_name: str = "") -> str:
    company_name = company_name or _get(job, "company_name")
    parts = [f"Title: {_get(job, 'title')}"]
    if _occupation_adds(job):
        parts.append(f"Occupation: {_get(job, 'occupation')}")
    if company_name:
        parts.append(f"Company: {company_name}")
    parts += [
        f"Location: {_get(job, 'location')}",
        f"Seniority: {_plain(_get(job, 'seniority'))}",
        f"Skills: {_skills(job)}",
    ]
    return "\n".join(parts)


def company_text(company: Any) -> str:
    parts = [f"Company: {_get(company, 'name')}"]
    if _get(company, "industry"):
        parts.append(f"Industry: {_get(company, 'industry')}")
    if _get(company, "location"):
        parts.append(f"Location: {_get(company, 'location')}")
    return "\n".join(parts)


def company_name_in(graph: HeteroGraph, company_id: str) -> str:
    node = graph.nodes.get(node_key("company", company_id)) if company_id else None
    if node is None:
        return ""
    first = node.text.split("\n", 1)[0]
    return first.removeprefix("Company: ")


def add_job(graph: HeteroGraph, job: Any, time: float = 0.0) -> str:
    """Upsert a job node (and its company link); returns its node key."""
    company_id = _get(job, "company_id")
    key = node_key("job", _get(job, "job_id"))
    graph.add_node(key, "job", job_text(job, company_name_in(graph, company_id)))
    company = node_key("company", company_id) if company_id else None
    if company in graph:
        graph.add_edge(key, company, "posted_by", time)
    return key


def add_member(graph: HeteroGraph, member: Any) -> str:
    key = node_key("member", _get(member, "member_id"))
    graph.add_node(key, "member", member_text(member))
    return key


def add_company(graph: HeteroGraph, company: Any) -> str:
    key = node_key("company", _get(company, "company_id"))
    graph.add_node(key, "company", company_text(company))
    return key


class EgoGraphEmbedder:
    """`index.embedder.Embedder` implemented by the PLM4Job encoder.

        embedder = EgoGraphEmbedder.from_pretrained("artifacts/encoder", graph)
        embedder.dim                      # 128
        embedder.embed_jobs(job_records)  # (n, 128) float32, unit rows
        embedder.embed_members(members)   # same space: score = member @ job
    """

    def __init__(self, model, builder, graph: HeteroGraph | None = None, batch_size: int = 256):
        self.model = model
        self.builder = builder
        self.graph = graph if graph is not None else HeteroGraph()
        self.batch_size = batch_size
        self.dim = int(model.config.embedding_dim)

    @classmethod
    def from_pretrained(cls, path: str | Path, graph: HeteroGraph | None = None, device: str = "auto", **kwargs):
        from models.encoder_training import load_checkpoint

        model, builder = load_checkpoint(path, device)
        return cls(model, builder, graph, **kwargs)

    def _embed(self, keys: list[str]) -> np.ndarray:
        from models.encoder_training import embed_nodes

        if not keys:
            return np.zeros((0, self.dim), np.float32)
        return embed_nodes(self.model, self.builder, self.graph, keys, batch_size=self.batch_size)

    def embed_jobs(self, jobs: Sequence[Any]) -> np.ndarray:
        keys = []
        for job in jobs:
            key = node_key("job", _get(job, "job_id"))
            keys.append(key if key in self.graph else add_job(self.graph, job))
        return self._embed(keys)

    def embed_members(self, members: Sequence[Any]) -> np.ndarray:
        keys = []
        for member in members:
            key = node_key("member", _get(member, "member_id"))
            keys.append(key if key in self.graph else add_member(self.graph, member))
        return self._embed(keys)
