"""Reliability drills with real processes: rollout, crash, database outage, backup and restore."""
