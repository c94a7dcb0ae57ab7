"""Clients made from the contract (Kafka, Redis), shared by probes, topics, the data path,
drills and the local platform. Import the submodule you need: each loads its driver."""
