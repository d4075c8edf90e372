-- Through which API an agent takes work (both, the broker's only, the A2A gateway's only), and what
-- each of its capabilities does (the A2A agent card's skill descriptions).
ALTER TABLE agents ADD COLUMN exposure TEXT NOT NULL DEFAULT 'both' CHECK (exposure IN ('both', 'broker', 'a2a'));
ALTER TABLE agents ADD COLUMN capability_descriptions TEXT NOT NULL DEFAULT '{}';
