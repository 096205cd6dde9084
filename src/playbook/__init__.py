"""Crisis-communication playbook engine for city governments."""

__version__ = "0.1.0"
