"""Pieces shared by every stage: typed config loading, atomic writes, manifests."""
