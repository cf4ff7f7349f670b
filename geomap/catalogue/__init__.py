"""The condition catalogue: every WHO ICD-10 category and Orphanet disorder.

``sources`` reads the offline data shipped in PyPI packages, ``load`` writes it into
PostgreSQL (``geomap conditions import``), ``curate`` holds the admins' changes
(enable, disable, rename, add a synonym; each audited) and members' requests, and
``search`` the public read queries (search, A-Z index, most active conditions).
"""
