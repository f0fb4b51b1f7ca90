"""Job retrieval index: live inverted index + dense KNN in one pass, learned links
(from hires and applies) and feedback rules. A pure library: no Kafka, no models."""
from index.embedder import Embedder, HashedTermEmbedder
from index.feedback import FeedbackRules, MemberRules
from index.job_index import IndexConfig, JobIndex, Reason, SearchResult
from index.links import Link, LinkGraph
from index.query import Query, member_query
from index.records import SENIORITY_LEVELS, JobRecord, MemberRecord, as_job, as_member
from index.terms import job_attributes, job_terms, member_attributes
from index.xp import Backend, get_backend

__all__ = [
    "Backend", "Embedder", "FeedbackRules", "HashedTermEmbedder", "IndexConfig", "JobIndex", "JobRecord",
    "Link", "LinkGraph", "MemberRecord", "MemberRules", "Query", "Reason", "SENIORITY_LEVELS",
    "SearchResult", "as_job", "as_member", "get_backend", "job_attributes", "job_terms",
    "member_attributes", "member_query",
]
