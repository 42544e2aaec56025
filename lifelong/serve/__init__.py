"""``lifelong serve``: the agent as an HTTP service that learns from a live stream.

Labelled batches arrive over HTTP (``POST /v1/observe``) or as task files in a folder, and
both doors write to one ingest log in the run folder, committed before a batch is
acknowledged. The learner is ``lifelong run``'s own loop on a thread, fed by that log, so
checkpoints, resume and results are the same; a kill at any moment loses nothing that was
acknowledged. Predictions and memory searches use weights the learner publishes every few
steps, and a dashboard at ``/`` follows the run. Modules: ``ingest_log`` (durable records),
``log_stream`` (the log as the runner's stream), ``service`` (learner thread, published
state), ``routes`` / ``schemas`` / ``app`` (FastAPI), ``folder_door``, ``cli``.
"""
