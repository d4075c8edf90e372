"""Domain models: plain data the core and storage layers share, and the
pydantic inputs that validate requests at the boundary."""
