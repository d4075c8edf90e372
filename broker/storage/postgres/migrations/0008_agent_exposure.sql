-- SQLite's 0014: an agent's exposure, and its capabilities' descriptions.
ALTER TABLE agents ADD COLUMN exposure TEXT NOT NULL DEFAULT 'both' CHECK (exposure IN ('both', 'broker', 'a2a'));
ALTER TABLE agents ADD COLUMN capability_descriptions TEXT NOT NULL DEFAULT '{}';
