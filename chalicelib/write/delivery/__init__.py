"""Alert delivery: every accepted alert reaches the configured sinks exactly once.

- ``outbox``: the ``delivery_outbox`` table, one row per (alert, sink), written in the alert's
  own transaction (``analysis``), then pending → delivered | dead;
- ``release``: which alerts a published generation contains (its ``delivery.json``); an alert
  is sent only after that, so its ``url`` and the feed resolve;
- ``deliverer``: the attempts of one writer run: bounded by a time budget, retries backed off
  on the writer's clock, an acknowledgement recorded the moment it arrives;
- ``sinks``, ``transport``, ``signing``, ``message``: webhook (Standard Webhooks), Slack-style
  incoming webhook, SNS; what each sends;
- ``status`` and ``feed``: the ``delivery.json`` and ``alerts.atom`` documents each export
  publishes.

Where it runs: the collect run delivers as its last step before compaction, on both backends,
because it is the run whose database changes last (on Lambda it is the only run that persists
the database, so only its acknowledgements survive). The export run delivers too, right after
publishing, when the database is a local file (not persisted to a bucket): there its
acknowledgements are as durable as the collect's, and alerts go out without waiting for the next
collect. See the README's "Delivery" section for the guarantees.
"""
