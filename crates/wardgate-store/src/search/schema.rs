//! The search index's tables (see the module documentation of `search`).

/// The schema version kept in `meta`.
/// `2`: the device inventory (`inv_device`, `inv_fact`, `inv_action`). An index of an
/// older version is emptied and rebuilt from the log when opened (it is a
/// cache); a newer one is refused.
pub(crate) const VERSION: &str = "2";

/// Versions this build empties and rebuilds rather than refuses.
pub(crate) const OLDER: &[&str] = &["1"];

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,  -- the audit record's sequence number
    ts         INTEGER NOT NULL,     -- @timestamp, unix microseconds
    action     TEXT NOT NULL,
    kind       INTEGER NOT NULL,     -- 1: alert
    severity   INTEGER,              -- the rule's, 0 info .. 4 critical
    rule_id    TEXT,
    route      TEXT,
    src_dev    TEXT,
    dst_dev    TEXT,
    src_ip     TEXT,
    control_id TEXT,
    op         TEXT,                 -- HL7 message type or DICOM operation
    ctx        INTEGER,              -- compact record: its context's seq (0: none found)
    doc        BLOB NOT NULL         -- the record's JSON as in the log
);
-- Each index ends, implicitly, with the rowid (seq): equality on the column
-- walks it in seq order, newest first with no sort.
CREATE INDEX IF NOT EXISTS ev_route ON events(route);
CREATE INDEX IF NOT EXISTS ev_action ON events(action);
CREATE INDEX IF NOT EXISTS ev_src_dev ON events(src_dev);
CREATE INDEX IF NOT EXISTS ev_dst_dev ON events(dst_dev);
CREATE INDEX IF NOT EXISTS ev_rule ON events(rule_id) WHERE rule_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ev_severity ON events(severity) WHERE severity IS NOT NULL;
CREATE INDEX IF NOT EXISTS ev_control ON events(control_id) WHERE control_id IS NOT NULL;
-- Connection contexts of compact routine records.
CREATE TABLE IF NOT EXISTS contexts (
    seq       INTEGER PRIMARY KEY,   -- the context record's seq
    conn      INTEGER NOT NULL,      -- wardgate.connection_id
    last_used INTEGER NOT NULL,      -- the latest seq that refers to it
    doc       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ctx_conn ON contexts(conn);
-- Per minute, the seq range of its events: time windows as seq windows.
CREATE TABLE IF NOT EXISTS spans (
    minute INTEGER PRIMARY KEY,
    lo     INTEGER NOT NULL,
    hi     INTEGER NOT NULL
);
-- Rollups for the plots.
CREATE TABLE IF NOT EXISTS r_route (
    minute INTEGER NOT NULL, route TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, route, action)
) WITHOUT ROWID;
-- The same per hour: long windows in hour buckets read 60 times fewer rows.
CREATE TABLE IF NOT EXISTS r_route_hour (
    hour INTEGER NOT NULL, route TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, route, action)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r_rule (
    hour INTEGER NOT NULL, rule_id TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, rule_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS r_device (
    hour INTEGER NOT NULL, device TEXT NOT NULL, action TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, device, action)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS r_device_by_device ON r_device(device, hour);
-- Per device per hour, all actions: the top-devices plot.
CREATE TABLE IF NOT EXISTS r_device_total (
    hour INTEGER NOT NULL, device TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, device)
) WITHOUT ROWID;
-- Rows per value of each indexed column: which index a search walks (the
-- rarest value's). Planner statistics: exact until a prune, over after.
CREATE TABLE IF NOT EXISTS value_counts (
    col TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (col, value)
) WITHOUT ROWID;
-- The device inventory: per device key (the enrolled source device, else
-- `ip:ADDRESS`), when it was first and last seen (unix µs) and the sightings
-- of values not kept because their kind was full.
CREATE TABLE IF NOT EXISTS inv_device (
    key      TEXT PRIMARY KEY,
    device   TEXT,                 -- the enrolled device id, if any
    first_ts INTEGER NOT NULL,
    last_ts  INTEGER NOT NULL,
    dropped  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inv_device_last ON inv_device(last_ts);
-- What was seen of it: at most `MAX_FACTS` values per (key, kind).
CREATE TABLE IF NOT EXISTS inv_fact (
    key      TEXT NOT NULL,
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts  INTEGER NOT NULL,
    PRIMARY KEY (key, kind, value)
) WITHOUT ROWID;
-- Its events by action (since first seen).
CREATE TABLE IF NOT EXISTS inv_action (
    key    TEXT NOT NULL,
    action TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (key, action)
) WITHOUT ROWID;
";

/// Empties every table but `meta`'s schema version (a new audit chain).
pub(crate) const WIPE: &str = "
DELETE FROM events; DELETE FROM contexts; DELETE FROM spans;
DELETE FROM r_route; DELETE FROM r_rule; DELETE FROM r_device; DELETE FROM value_counts;
DELETE FROM r_route_hour; DELETE FROM r_device_total;
DELETE FROM inv_device; DELETE FROM inv_fact; DELETE FROM inv_action;
DELETE FROM meta WHERE key <> 'schema';
";

/// Fills the coarser rollups from the finer ones when an index made before
/// they existed is opened (they are kept by the indexer from then on).
pub(crate) const BACKFILL: &str = "
INSERT INTO r_route_hour(hour, route, action, n)
    SELECT minute / 60, route, action, sum(n) FROM r_route
    WHERE NOT EXISTS (SELECT 1 FROM r_route_hour) GROUP BY 1, 2, 3;
INSERT INTO r_device_total(hour, device, n)
    SELECT hour, device, sum(n) FROM r_device
    WHERE NOT EXISTS (SELECT 1 FROM r_device_total) GROUP BY 1, 2;
";
