"""What the deployment carries. Today: the bootstrap tier's embedded store, in-process
cache and event log (`embedded`), and the store -> cache -> stream smoke round trip
(`smoke`), the data path's readiness check."""
