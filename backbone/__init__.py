"""backbone: prove a TimescaleDB + Redis + Kafka deployment works (or the embedded bootstrap tier)."""
__version__ = "0.1.0"
