"""Offline scoring through the same ``models.assess``: one process (``local``) or Spark (``spark``)."""
