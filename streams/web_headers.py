"""Response headers that say where an answer came from, shared by the worker's read API
(`streams.member_reads`), the scoring HTTP API (`serving.online.http_api`) and the test
harness that reads them (`infra.worker_process`). Plain strings: importing this pulls in
neither faust nor FastAPI."""

SERVED_BY = "X-Hirestream-Served-By"  # the worker that read its table
COPY = "X-Hirestream-Copy"  # which copy of the member's state: "active" or "standby"
PARTITION = "X-Hirestream-Partition"
FORWARDED_BY = "X-Hirestream-Forwarded-By"  # the worker that forwarded the request


def hirestream_headers(headers) -> dict[str, str]:
    """The X-Hirestream-* headers of an answer, to relay with a forwarded one."""
    return {k: v for k, v in headers.items() if k.lower().startswith("x-hirestream-")}
