"""Profile computation for one tenant: SQL aggregation → numpy → scikit-learn → profile rows.

``recompute.recompute(tenant)`` runs it; the other modules are its steps, each a function of numpy
arrays that touches no database (``features`` reads, ``store`` writes).
"""
