"""a2a-broker: a durable gRPC message broker and task queue for AI agents."""

__version__ = "0.1.0"
