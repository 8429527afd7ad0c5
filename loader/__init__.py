"""loader: a declarative bulk data migration and batch loader for case-management REST APIs."""

__version__ = "0.1.0"
