"""Any change to what runs are built from moves the workspace's configuration version, in the database.

Runs use agent definitions cached per ``Workspace.config_version`` (agents_app.definitions). The services
used to bump it themselves, so writes that bypassed them (the Django admin and its inlines, the ORM in a
shell, a bulk ``update()``) left every process running the old agent, or a provider's old key. These
triggers make the database the one home of that rule: any INSERT, UPDATE or DELETE of an agent, handoff,
context or provider bumps its workspace's version, and a changed agent (or a handoff added to or removed
from it) gets ``version + 1``.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION workspace_config_bump() RETURNS trigger LANGUAGE plpgsql AS $$
-- TG_ARGV[0]: the column that names the row's workspace, or (with TG_ARGV[1] = 'agent') its agent.
DECLARE
    keys bigint[] := '{}';
BEGIN
    IF TG_OP <> 'INSERT' THEN keys := keys || (to_jsonb(OLD) ->> TG_ARGV[0])::bigint; END IF;
    IF TG_OP <> 'DELETE' THEN keys := keys || (to_jsonb(NEW) ->> TG_ARGV[0])::bigint; END IF;
    IF TG_ARGV[1] = 'agent' THEN
        keys := ARRAY(SELECT workspace_id FROM agents_app_agent WHERE id = ANY(keys));
    END IF;
    UPDATE accounts_app_workspace SET config_version = config_version + 1 WHERE id = ANY(keys);
    RETURN NULL;
END;
$$;

CREATE FUNCTION agents_agent_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- An update that changes the definition (anything but the version and the timestamp) is a new version;
    -- one that only moves the version (a handoff changed, below) keeps the version it sets.
    IF (to_jsonb(NEW) - 'version' - 'updated_at') IS DISTINCT FROM (to_jsonb(OLD) - 'version' - 'updated_at') THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION agents_handoff_bump_source() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sources bigint[] := '{}';
BEGIN
    IF TG_OP <> 'INSERT' THEN sources := sources || OLD.source_id; END IF;
    IF TG_OP <> 'DELETE' THEN sources := sources || NEW.source_id; END IF;
    -- Its own trigger then bumps the workspace's configuration.
    UPDATE agents_app_agent SET version = version + 1 WHERE id = ANY(sources);
    RETURN NULL;
END;
$$;

CREATE TRIGGER agents_agent_version BEFORE UPDATE ON agents_app_agent
    FOR EACH ROW EXECUTE FUNCTION agents_agent_bump_version();
CREATE TRIGGER agents_agent_config AFTER INSERT OR UPDATE OR DELETE ON agents_app_agent
    FOR EACH ROW EXECUTE FUNCTION workspace_config_bump('workspace_id');
CREATE TRIGGER agents_handoff_config AFTER INSERT OR UPDATE OR DELETE ON agents_app_agenthandoff
    FOR EACH ROW EXECUTE FUNCTION agents_handoff_bump_source();
CREATE TRIGGER agents_context_config AFTER INSERT OR UPDATE OR DELETE ON agents_app_agentcontext
    FOR EACH ROW EXECUTE FUNCTION workspace_config_bump('agent_id', 'agent');
CREATE TRIGGER providers_provider_config AFTER INSERT OR DELETE ON providers_app_provider
    FOR EACH ROW EXECUTE FUNCTION workspace_config_bump('workspace_id');
-- A connection test's result is not configuration.
CREATE TRIGGER providers_provider_config_update AFTER UPDATE ON providers_app_provider
    FOR EACH ROW WHEN (
        (to_jsonb(NEW) - 'updated_at' - 'last_tested_at' - 'last_test_ok' - 'last_test_message')
        IS DISTINCT FROM (to_jsonb(OLD) - 'updated_at' - 'last_tested_at' - 'last_test_ok' - 'last_test_message')
    ) EXECUTE FUNCTION workspace_config_bump('workspace_id');
"""

BACKWARD = """
DROP TRIGGER IF EXISTS providers_provider_config_update ON providers_app_provider;
DROP TRIGGER IF EXISTS providers_provider_config ON providers_app_provider;
DROP TRIGGER IF EXISTS agents_context_config ON agents_app_agentcontext;
DROP TRIGGER IF EXISTS agents_handoff_config ON agents_app_agenthandoff;
DROP TRIGGER IF EXISTS agents_agent_config ON agents_app_agent;
DROP TRIGGER IF EXISTS agents_agent_version ON agents_app_agent;
DROP FUNCTION IF EXISTS agents_handoff_bump_source();
DROP FUNCTION IF EXISTS agents_agent_bump_version();
DROP FUNCTION IF EXISTS workspace_config_bump();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts_app", "0004_workspace_trace_retention_days"),
        ("agents_app", "0002_run_indexes_for_writes"),
        ("providers_app", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
