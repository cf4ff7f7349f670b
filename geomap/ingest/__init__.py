"""Every input read and validated in one room.

``importer`` (CSV and GeoJSON member files), ``members_bulk`` (the COPY loader),
``demo`` (synthetic members) and ``validators`` (the field checks shared with the
location API, the settings form and sign-up).
"""
