"""`backbone serve`: one supervisor running the relay, the bridge, scheduled ingest jobs and
cache maintenance, with Prometheus metrics and a supervision snapshot (docs/serve.md).

`schedule` reads the schedule file, `supervisor` is the generic TaskGroup supervisor,
`jobs` and `ingest` are the tasks, `metrics` the registry and its HTTP endpoint, `service`
puts them together. Nothing is imported here, so the CLI stays light until `serve` runs.
"""
