"""The case record, census code lists, CIN census XML reader and writer."""
