"""byte-order ("C") collation for pseudonyms and member region codes

Revision ID: 0015b_import
Revises: 0014c_cell_names

A bulk import rebuilds the unique indexes on ``members.pseudonym`` and
``members.pseudonym_key`` and the index on ``member_locations (country_code,
region_code)``. Under the database's ``C.UTF-8`` collation PostgreSQL 15 compares
every pair of keys through the C library's ``strcoll`` and cannot use abbreviated
sort keys; under ``"C"`` it compares bytes. For UTF-8 text, byte order is code point
order, which is what glibc's ``C.UTF-8`` collates by, so equality and order are
unchanged (no query folds case in SQL on these columns). No view depends on them.
"""

from alembic import op

revision = "0015b_import"
down_revision = "0014c_cell_names"
branch_labels = None
depends_on = None

COLUMNS = (
    ("members", "pseudonym", "varchar(64)"),
    ("members", "pseudonym_key", "varchar(256)"),
    ("member_locations", "country_code", "varchar(2)"),
    ("member_locations", "region_code", "varchar(24)"),
)


def upgrade() -> None:
    for table, column, kind in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind} COLLATE "C"')


def downgrade() -> None:
    for table, column, kind in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE {kind} COLLATE "default"')
