"""Kafka topics as code: the declared topics (`model`: validation, plan, outcome), the
cluster side (`admin`: observe, apply through a counting AdminClient), their rendering
(`render`) and the "topics" readiness check (`check`)."""
