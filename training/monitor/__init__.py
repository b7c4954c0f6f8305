"""Monitoring: serving windows, drift and performance against the training profile, alerts and actions."""
