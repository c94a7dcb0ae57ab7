"""Ingest events (docs/events.md): the relay of each committed ingest's events from the
outbox (whose rows `backbone.data.outbox` shapes) to Kafka (`relay`), the bridge that
consumes them on either tier (`bridge`), and their checks in `validate`: the outbox backlog
and the consumer lag (`checks`)."""
