"""The baseline: the schema of the last release before migrations (schema version 4).

Revision 0004, the first. On an empty database it creates the schema-4 tables; a database
that release (or an older one, brought to 4 by :mod:`orchestrator.stores.legacy`) wrote is
stamped at this revision instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.stores.baseline import SCHEMA_4

revision = "0004"
down_revision = None
branch_labels = None
depends_on = None

VERSION = 4


def upgrade() -> None:
    SCHEMA_4.create_all(op.get_bind())
    op.execute(
        sa.text("INSERT INTO schema_meta (id, version) VALUES (1, :v)").bindparams(v=VERSION)
    )


def downgrade() -> None:
    raise NotImplementedError("migrations go forward only: restore a backup to go back")
