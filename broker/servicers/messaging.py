"""Messaging servicer (every RPC answers UNIMPLEMENTED until the Messaging work lands)."""

from __future__ import annotations

from ..core.mailbox import Mailbox
from ..pb import messaging_pb2_grpc as pb_grpc


class MessagingServicer(pb_grpc.MessagingServicer):
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
