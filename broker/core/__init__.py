"""The broker's rules: registry, mailbox, task queue. Each takes a Storage."""
