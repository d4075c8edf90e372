-- Attempts that ended because their agent left (went offline or deregistered), not because
-- the task failed: they raise the attempt number but spend no retry. The retry budget
-- counts attempt - departures.
ALTER TABLE tasks ADD COLUMN departures INTEGER NOT NULL DEFAULT 0 CHECK (departures >= 0);
