"""Migrations take over: ``schema_meta.version`` becomes 5.

Revision 0005, after 0004. No table changes. A release before migrations created and
upgraded its schema in place at every start and refused only a version above its own (4):
from here on it refuses this database instead of writing to a schema it no longer knows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: schema_meta.version after this migration (a release before migrations refuses above 4)
VERSION = 5


def upgrade() -> None:
    op.execute(sa.text("UPDATE schema_meta SET version = :v").bindparams(v=VERSION))


def downgrade() -> None:
    raise NotImplementedError("migrations go forward only: restore a backup to go back")
