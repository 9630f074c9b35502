"""A workflow's change moves its workspace's configuration version, as agents' changes do (agents_app 0003).

Runs use a workflow's checked graph cached per ``Workspace.config_version`` (workflows_app.plans); any INSERT,
UPDATE or DELETE of a workflow, through any interface (services, the admin, a shell), bumps it in the database.
"""

from django.db import migrations

FORWARD = """
CREATE TRIGGER workflows_workflow_config AFTER INSERT OR UPDATE OR DELETE ON workflows_app_workflow
    FOR EACH ROW EXECUTE FUNCTION workspace_config_bump('workspace_id');
"""

BACKWARD = "DROP TRIGGER IF EXISTS workflows_workflow_config ON workflows_app_workflow;"


class Migration(migrations.Migration):
    dependencies = [
        ("workflows_app", "0001_workflows"),
        ("agents_app", "0003_configuration_triggers"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
