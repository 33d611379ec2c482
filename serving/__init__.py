"""The FastAPI service: settings, dependencies, one router per resource, schemas, the manager's pages, middleware."""
