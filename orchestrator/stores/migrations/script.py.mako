"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None

#: schema_meta.version after this migration (a release before migrations refuses above 4)
VERSION = ${int(up_revision)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    op.execute(sa.text("UPDATE schema_meta SET version = :v").bindparams(v=VERSION))


def downgrade() -> None:
    raise NotImplementedError("migrations go forward only: restore a backup to go back")
