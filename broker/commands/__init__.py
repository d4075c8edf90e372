"""Commands of ``a2a-broker`` beside ``serve`` (the server layer: they may use every layer below).

tokens         issue, list and revoke API tokens, in the database or through a running
               broker's Admin service (tokens_remote)
"""
