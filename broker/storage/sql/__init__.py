"""The operations both backends run: synchronous jobs of a connection (``connection.py``), each
given its dialect's named statements (``queries.py`` says which; ``sqlite/queries.py`` and
``postgres/queries.py`` write them). Nothing here names a driver or a dialect."""
