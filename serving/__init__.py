"""Serving: everything after the streams, in three parts and two shared modules.

    online/      the scoring path a request takes (engine, scorers, the scoring
                 service with its deadlines and queue, the Kafka agent, the HTTP API,
                 the job-index replica, metrics)
    evaluation/  replay of a recorded log through that same path (event log, replay,
                 ranking metrics, the report)
    training/    examples and checkpoints built from logs (ranker examples, the
                 ranker pipeline, the PLM4Job encoder run)
    slates.py    the one labelling of slates and outcomes, read by training and replay
    graph_data.py the one fold of events into the marketplace graph
    client.py    what a user imports: produce events, ask for rankings
"""
