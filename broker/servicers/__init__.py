"""gRPC servicers: protobuf <-> domain translation, nothing else.

The rules live in ``broker.core``; errors become status codes in ``errors.py``.
"""
