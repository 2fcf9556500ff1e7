"""Input plugin for log shippers: the Anthropic Compliance API Activity Feed as JSON lines."""

__version__ = "0.2.0"
NAME = "anthropic-compliance-input"
FORMATS = ("raw", "ecs", "ocsf")  # what a line holds: [output] format, run --format, demo --format
