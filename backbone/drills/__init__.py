"""Failover and recovery drills: live (fault injection under load), simulated, backup / restore."""
