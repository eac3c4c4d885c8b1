-- +goose Up
-- The detector's memory of an anomaly: when a deviation was last seen (to close the episode after a
-- quiet period) and per-metric figures (baselines, thresholds) that root-cause analysis reuses.
ALTER TABLE anomalies ADD COLUMN last_seen_ns bigint NOT NULL DEFAULT 0;
ALTER TABLE anomalies ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
CREATE INDEX anomalies_open ON anomalies (tenant_id) WHERE ended_ns = 0;

-- +goose Down
DROP INDEX anomalies_open;
ALTER TABLE anomalies DROP COLUMN details;
ALTER TABLE anomalies DROP COLUMN last_seen_ns;
