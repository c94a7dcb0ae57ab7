"""Ingest events (docs/events.md): each committed ingest's events in the outbox (`model`),
the relay to Kafka (`relay`), and the bridge that consumes them on either tier (`bridge`)."""
