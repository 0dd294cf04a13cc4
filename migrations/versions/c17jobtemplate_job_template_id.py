"""job.template_id: each job carries its test's template, so the jobs of a
template are one index range (``/api/v1/jobs?template=``); backfilled from
the tests

Revision ID: c17jobtemplate
Revises: c16testcounts
Create Date: 2026-11-26 00:35:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c17jobtemplate"
down_revision = "c16testcounts"
branch_labels = None
depends_on = None


def upgrade():
    name = op.f("fk_job_template_id_template")
    if op.get_bind().dialect.name == "sqlite":
        # a column with its reference, added in place (batch mode would copy the whole table)
        op.execute(f"ALTER TABLE job ADD COLUMN template_id INTEGER CONSTRAINT {name} REFERENCES template (id)")
    else:
        op.add_column("job", sa.Column("template_id", sa.Integer(), nullable=True))
        op.create_foreign_key(name, "job", "template", ["template_id"], ["id"])
    op.execute("UPDATE job SET template_id = (SELECT test.template_id FROM test WHERE test.id = job.test_id)")
    op.create_index("ix_job_template_id", "job", ["template_id", "id"])


def downgrade():
    op.drop_index("ix_job_template_id", table_name="job")
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_column("template_id")
