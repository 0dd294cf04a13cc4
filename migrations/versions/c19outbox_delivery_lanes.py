"""robot_delivery: a stable id per delivery (receivers drop duplicates) and its
ordering key (deliveries of one lane go out in commit order)

Revision ID: c19outbox
Revises: c18signatures
Create Date: 2026-12-03 14:30:00

Rows written before this revision get a fresh id each and the key their
event and action give (``<backend>/<queue> command`` or ``... webhook
<target>``), so a pending row already waits in the right lane.
"""
import uuid

import sqlalchemy as sa
from alembic import op

revision = "c19outbox"
down_revision = "c18signatures"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("robot_delivery") as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=36), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=255), nullable=False, server_default=""))
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT d.id, d.action, d.target, e.backend, e.queue FROM robot_delivery d "
        "JOIN robot_event e ON e.id = d.event_id")).all()
    for row in rows:
        channel = "webhook " + row.target if row.action == "webhook" else row.action
        key = f"{row.backend or '-'}/{row.queue or '-'} {channel}"[:255]
        bind.execute(sa.text("UPDATE robot_delivery SET uid = :uid, ordering_key = :key WHERE id = :id"),
                     {"uid": str(uuid.uuid4()), "key": key, "id": row.id})
    with op.batch_alter_table("robot_delivery") as batch_op:
        batch_op.alter_column("uid", server_default=None)
        batch_op.alter_column("ordering_key", server_default=None)
        batch_op.create_unique_constraint(batch_op.f("uq_robot_delivery_uid"), ["uid"])
        batch_op.create_index("ix_robot_delivery_lane", ["ordering_key", "state", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("robot_delivery") as batch_op:
        batch_op.drop_index("ix_robot_delivery_lane")
        batch_op.drop_constraint(batch_op.f("uq_robot_delivery_uid"), type_="unique")
        batch_op.drop_column("ordering_key")
        batch_op.drop_column("uid")
