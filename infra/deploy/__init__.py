"""Deploying a stack with the real engine through the Automation API (`python -m infra.deploy`)."""
