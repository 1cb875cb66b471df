-- The schema cde-bot wrote at version 1 on PostgreSQL (the SQLite one, in PostgreSQL's
-- types: SERIAL keys, 32-bit INTEGER ids), kept to test every migration from it.
CREATE TABLE announced (
	channel_id VARCHAR(255) NOT NULL, 
	run_id VARCHAR(255) NOT NULL, 
	announced_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_announced PRIMARY KEY (run_id, channel_id)
);
CREATE TABLE first_seen (
	run_id VARCHAR(64) NOT NULL, 
	seen_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT pk_first_seen PRIMARY KEY (run_id)
);
CREATE TABLE incidents (
	id SERIAL NOT NULL PRIMARY KEY, 
	channel_id VARCHAR(255) NOT NULL, 
	site_id INTEGER, 
	connector_id VARCHAR(255), 
	message_ts VARCHAR(64) NOT NULL, 
	run JSON NOT NULL, 
	failures INTEGER NOT NULL, 
	muted_failures INTEGER NOT NULL, 
	first_failed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_failed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	acknowledged_by VARCHAR(255), 
	acknowledged_at TIMESTAMP WITH TIME ZONE, 
	resolved_at TIMESTAMP WITH TIME ZONE, 
	resolved_by_run VARCHAR(255), 
	in_digest BOOLEAN NOT NULL
);
CREATE TABLE mutes (
	channel_id VARCHAR(255) NOT NULL, 
	site_key INTEGER NOT NULL, 
	connector_key VARCHAR(255) NOT NULL, 
	site_id INTEGER, 
	connector_id VARCHAR(255), 
	until TIMESTAMP WITH TIME ZONE NOT NULL, 
	muted_by VARCHAR(255) NOT NULL, 
	suppressed INTEGER NOT NULL, 
	CONSTRAINT pk_mutes PRIMARY KEY (channel_id, site_key, connector_key)
);
CREATE TABLE schema_version (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	CONSTRAINT pk_schema_version PRIMARY KEY (id)
);
CREATE TABLE state (
	"key" VARCHAR(255) NOT NULL, 
	value TEXT NOT NULL, 
	CONSTRAINT pk_state PRIMARY KEY ("key")
);
CREATE TABLE subscriptions (
	id SERIAL NOT NULL PRIMARY KEY, 
	channel_id VARCHAR(255) NOT NULL, 
	filter JSON NOT NULL, 
	filter_key VARCHAR(1024) NOT NULL, 
	created_by VARCHAR(255) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	CONSTRAINT uq_subscriptions_channel_id_filter_key UNIQUE (channel_id, filter_key)
);
CREATE INDEX ix_announced_announced_at ON announced (announced_at);
CREATE INDEX ix_incidents_channel_id_resolved_at ON incidents (channel_id, resolved_at);
CREATE INDEX ix_incidents_channel_id_message_ts ON incidents (channel_id, message_ts);
CREATE INDEX ix_first_seen_seen_at ON first_seen (seen_at);
INSERT INTO schema_version VALUES (1, 1);
